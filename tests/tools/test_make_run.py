"""`make run`'s job as a user runs it: separate processes, a trained and
published model, the scenario, a summary, and nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_runs_end_to_end_and_exits_cleanly(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--run-dir", str(tmp_path / "run"), "--requests", "4"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 4
    assert not [p for p in pids if alive(p)], "a service outlived the demo"
    assert "All services stopped ({'trainer': 0, 'router': 0, 'predictor': 0, 'feature_store': 0})" in out
    assert re.search(r"published rf-\S+ to the predictor", out)
    assert out.count("BEFORE latency crossed 300 ms") == 2
    assert "ROUND_ROBIN" in out and "REROUTE" in out and "PRIMARY" in out
