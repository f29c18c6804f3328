"""Every test here runs the foresight benchmark's simulation, or the whole
benchmark at small sizes: all are marked slow, so `make unit` leaves them to
`make slow` and `make test`. Marked once for the folder, so a test added
here is marked too."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)
