from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import logs
from tests.e2e.conftest import Fleet, start_fleet, stop_fleet

# Services log state changes from background threads; in tests only
# warnings and errors are worth showing.
logs.configure("tests", "console", "warning")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """The four real services in this process, on port 0 (metrics too)."""
    running = start_fleet(tmp_path / "models")
    yield running
    stop_fleet(running)
