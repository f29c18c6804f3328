"""`make chaos-local` as CI runs it: the five faults against supervised local
processes, every invariant held, and the report's table says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import chaos
from tools.faults import FaultError

pytestmark = pytest.mark.slow

FAULTS = ["latency_spike", "predictor_killed", "feature_store_killed", "corrupted_model", "good_model"]


@pytest.mark.timeout(300)
def test_chaos_local_holds_every_invariant(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "tools.chaos_local", "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ") and "fault" not in line]
    table = {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}
    assert list(table) == FAULTS
    for fault, (calls, failed, *_actions, _detect, _recover, invariant) in table.items():
        assert int(calls) > 0 and failed == "0" and invariant == "held", fault
    assert "REROUTE" in done.stdout and "reactive fallback on observed latency" in done.stdout
    assert "supervisor restarts: {'feature_store': 1, 'predictor': 1}" in done.stdout


def test_local_chaos_refuses_an_address_off_this_machine():
    args = chaos.parser().parse_args(["--router-addr", "10.1.2.3:50053"])
    with pytest.raises(FaultError, match=r"--router-addr resolves to 10\.1\.2\.3"):
        chaos.check_loopback(args)


def test_the_report_table_counts_per_fault():
    report = chaos.Report("predictor_killed", detect_s=0.5, recover_s=1.25)
    report.count(
        [
            chaos.Call(0.0, True, action="PRIMARY"),
            chaos.Call(0.1, True, action="REROUTE"),
            chaos.Call(0.2, False, error="UNAVAILABLE: gone"),
        ]
    )
    assert report.broken == ["1 Decide calls failed: {'UNAVAILABLE: gone': 1}"]
    lines = chaos.table([report]).splitlines()
    assert lines[0].split("|")[1:-1] == [
        " fault            ",
        " calls ",
        " failed ",
        " PRIMARY ",
        " REROUTE ",
        " ROUND_ROBIN ",
        " LAST_RESORT ",
        " detect s ",
        " recover s ",
        " invariant ",
    ]
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == [
        "predictor_killed",
        "3",
        "1",
        "1",
        "1",
        "0",
        "0",
        "0.50",
        "1.25",
        "BROKEN",
    ]
