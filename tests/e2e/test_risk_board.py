"""The risk board as an operator's browser shows it: headless Chromium loads
the router's page while a backend spikes, and the page it renders names the
backend, its open breaker, its latency and forecast, first of all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import chromium
from tests.e2e.conftest import Fleet
from tests.tools.test_ace_cli import spiked

pytestmark = pytest.mark.slow  # a real Prometheus or browser: see docs/development.md


def rows(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="([^"]+)" data-backend="([^"]+)">', dom)


def test_chromium_renders_the_spiking_backend_first_with_its_breaker_open(fleet: Fleet, tmp_path: Path) -> None:
    spiked(fleet)
    url = f"http://127.0.0.1:{fleet.servers['router'].metrics_port}/"
    dom = chromium.dom(url, tmp_path / "chromium")
    assert "<title>ACE risk board</title>" in dom
    assert rows(dom) == [("open risk", "gpu-c"), ("closed ok", "gpu-a"), ("closed ok", "gpu-b")]
    spiking = dom[dom.index('data-backend="gpu-c"') :].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", spiking)[:6] == [
        "gpu-c",
        "open",
        "0 s",
        "1,000 ms",
        "1,000 ms (observed)",
        "-700 ms",
    ]
    assert "1 of 3 backends forecast at or over 300 ms within 300 s; 1 breakers open" in dom
    assert 'predictor <b class="warn">unavailable</b>' in dom
    assert "closed → open" in dom
    shot = chromium.screenshot(url, tmp_path / "board.png", tmp_path / "chromium")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
