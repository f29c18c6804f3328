"""Hedged requests in the closed-loop simulation (bench.foresight.hedging)."""

import numpy as np

from bench.foresight import runner, sim
from bench.foresight.hedging import Hedged
from bench.foresight.routers import LeastOutstanding

CFG = runner.Config(duration_s=900.0, score_from_s=300.0)


def run(fault: str, after_ms: float | None, share: float | None) -> sim.Run:
    case = runner.Case("synthetic", fault, 104)
    scenario = case.scenario(CFG)
    base = LeastOutstanding(CFG.pool.backends, 104)
    router = base if after_ms is None else Hedged(base, after_ms, share)
    return sim.run(router, case.arrivals(CFG, scenario), scenario, CFG.pool)


def test_a_budget_of_nothing_sends_no_copy_and_changes_nothing():
    plain, hedged = run("noisy_neighbour", None, None), run("noisy_neighbour", 50.0, 0.0)
    assert hedged.hedged == 0
    np.testing.assert_array_equal(plain.latency_ms, hedged.latency_ms)
    np.testing.assert_array_equal(plain.backend, hedged.backend)


def test_a_copy_answers_for_a_request_stuck_on_a_backend_that_stopped_answering():
    plain, hedged = run("backend_failure", None, None), run("backend_failure", 300.0, None)
    assert plain.failed.sum() > 50
    assert hedged.hedged > 0
    # Requests to the dead backend would time out; their copies are answered elsewhere.
    assert hedged.failed.sum() < plain.failed.sum() / 4
    # Copies are load: the telemetry counts them.
    assert hedged.load.sum() > plain.load.sum()
