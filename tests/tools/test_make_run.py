"""`make run`'s job as a user runs it: separate processes, a trained and
published model, the scenario, a summary, the learning loop act, and
nothing left behind. The demo runs once for the module: it takes about
half a minute."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

LOOP_EVENTS = ["FLEET CHANGE", "DRIFT", "RETRAIN", "SHADOWED", "PROMOTED", "OPERATOR", "ROLLED BACK"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--run-dir", str(run_dir), "--requests", "4"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_demo_runs_end_to_end_and_exits_cleanly(demo: str):
    out = demo
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 4
    assert not [p for p in pids if alive(p)], "a service outlived the demo"
    assert "All services stopped ({'trainer': 0, 'router': 0, 'predictor': 0, 'feature_store': 0})" in out
    assert re.search(r"published rf-\S+ to the predictor", out)
    # The first spike meets an unproven model: the breakers are reactive and
    # open backend-c's only after it crossed. Its labels prove the model,
    # whose forecast then opens backend-a's ahead of the second, and its
    # share of decisions falls before the crossing and comes back after.
    act_one = out[: out.index("The learning loop.")]
    assert re.search(
        r"backend-c: latency crossed 300 ms at \S+ \(peak \d+ ms\); its breaker opened \d+ s AFTER", act_one
    )
    assert "~>" in act_one.split("MODEL PROVEN")[0], "the forecast runs in shadow until the model is proven"
    proven_at = re.search(r"^(\+\d\d:\d\d) \| MODEL PROVEN: .*precision [\d.]+, recall [\d.]+\)\)$", act_one, re.M)
    assert proven_at, "the trust gate passed the model on the first spike's labels"
    assert re.search(
        r"backend-a: latency crossed 300 ms at \S+ \(peak \d+ ms\); its breaker opened \d+ s BEFORE", act_one
    )
    share = re.search(
        r"backend-a: latency crossed.*\n  Its share of decisions: (\d+)% 5-10 min before, (\d+)% in the minute before, "
        r"(\d+)% while over the threshold, (\d+)% in the 5 min after its breaker closed",
        act_one,
    )
    assert share, "the summary gives backend-a's share of decisions around its spike"
    before, leading, over, after = (int(v) for v in share.groups())
    assert leading < before and over < leading and after > over
    assert out.count("BEFORE latency crossed 300 ms") == 1
    assert "ROUND_ROBIN" in out and "REROUTE" in out and "PRIMARY" in out
    assert re.search(r"Policy shadow, threshold 250 ms against the live 300 ms: \d+ of \d+ decisions", out)


def loop_events(out: str) -> list[str]:
    """The learning loop act's event lines, by their capitalised first words, in order."""
    act = out[out.index("The learning loop.") :]
    return re.findall(r"^ *\+\d+:\d\d \| ([A-Z][A-Z ]*[A-Z]):", act, flags=re.MULTILINE)


def test_the_demo_shows_drift_retrain_promotion_and_rollback_in_order(demo: str):
    events = loop_events(demo)
    assert set(LOOP_EVENTS) <= set(events), events
    first = [events.index(e) for e in LOOP_EVENTS]
    assert first == sorted(first), events
    assert "REFUSED" not in events, "the retrained candidate beats the model the fleet change made wrong"
    # The rollback names the forced version, the one it restores, and their errors on the same labels.
    assert re.search(r"ROLLED BACK: v2 is active again: roll back v3 to v2: v3 LOG_MAE [\d.]+ .* previous v2", demo)
    # The promoted v2 inherits v1's trust (no breach since it arrived to judge
    # it by); the forced v3 never earned any: its forecasts run in shadow.
    act = demo[demo.index("The learning loop.") :]
    rows = re.findall(r"^ *\+\d+:\d\d \|.*\| (v\d)$", act, flags=re.MULTILINE)
    lines = [line for line in act.splitlines() if re.search(r"\| v\d$", line)]
    after_promotion = act[act.index("PROMOTED") :]
    v2_rows = [line for line in lines if line.endswith("| v2") and line in after_promotion]
    v3_rows = [line for line in lines if line.endswith("| v3")]
    assert rows and v2_rows and v3_rows
    assert all("~>" not in line for line in v2_rows[:2]), "v2 drives the breakers after its promotion"
    assert all("~>" in line and "->" not in line for line in v3_rows), "the forced v3 runs in shadow"


def test_the_demo_reports_the_error_before_during_and_after(demo: str):
    summary = demo[demo.index("Learning loop summary") :]
    found = re.findall(
        r"^- (before the change|after it, until replaced|after promotion) +(v\d): MAE [\d.]+ ms, log error ([\d.]+)",
        summary,
        flags=re.MULTILINE,
    )
    errors = {when: float(log) for when, _, log in found}
    versions = {when: v for when, v, _ in found}
    assert versions == {"before the change": "v1", "after it, until replaced": "v1", "after promotion": "v2"}
    assert errors["after it, until replaced"] > 2 * errors["before the change"], "the fleet change made v1 wrong"
    assert errors["after promotion"] < errors["after it, until replaced"] / 2, "the retrained version's error fell back"
    assert re.search(r"outcomes reported: ACCEPTED \d+$", summary, flags=re.MULTILINE), "every outcome was accepted"
