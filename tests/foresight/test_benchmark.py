"""The whole benchmark on tiny sizes: it trains, runs every router, replays
the real telemetry and writes the report with its plots."""

from __future__ import annotations

from pathlib import Path

from bench.foresight import runner
from bench.foresight.__main__ import main

MAX_PNG_BYTES = 200_000


def test_quick_benchmark_writes_the_report(tmp_path: Path, capsys):
    assert main(["--quick", "--workers", "1", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "foresight.md").read_text()
    for name in runner.ROUTERS:
        assert f"| {name} |" in text
    assert "## Where ACE stands against the placement targets" in text
    # Every router's distance to both oracles, in the headline and per class.
    assert text.count("| vs oracle shortest expected delay, pp | vs central queue, pp |") == 1 + 3
    assert "## Real telemetry: Nezha OnlineBoutique" in text
    assert "## Real telemetry: NAB" in text
    pngs = sorted(tmp_path.glob("*.png"))
    assert {p.name for p in pngs} == {
        "foresight-routers.png",
        "foresight-slow_drift.png",
        "foresight-fail_fast.png",
        "foresight-quiet.png",
    }
    assert all(0 < p.stat().st_size < MAX_PNG_BYTES for p in pngs)
    assert "wrote" in capsys.readouterr().out
