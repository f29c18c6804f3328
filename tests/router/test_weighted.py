"""The weighted rotation of Decide calls without in-flight counts: shares by
estimated capacity, breakers that keep Settings.open_share of a share, and
the capacity estimate itself."""

import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from services.common.features import FEATURE_NAMES, N_FEATURES
from services.router.policy import (
    WEIGHTED_CYCLE,
    Action,
    Basis,
    Candidate,
    Settings,
    State,
    capacity_rps,
    choose,
)
from services.router.table import RoutingTable, Update

# Every estimate counts as it is, so shares are the capacities' own.
S = Settings(open_after_s=0, capacity_deadband=0.0)


def warm(backend_id: str, capacity: float | None, state: State = State.CLOSED, risk: float = 100.0) -> Candidate:
    return Candidate(
        backend_id, state, cold=False, points=30, risk_ms=risk, basis=Basis.FORECAST, capacity_rps=capacity
    )


def counts(candidates: list[Candidate], settings: Settings = S, turns: int = WEIGHTED_CYCLE) -> Counter[str]:
    return Counter(choose(candidates, t, settings).backend_id for t in range(turns))


@pytest.mark.parametrize("load", [0.0, 5.0, 15.0, 25.0, 29.0])
def test_the_estimate_of_an_mm1_queue_is_its_rate_at_any_load(load):
    mu = 30.0
    p95_ms = 1000.0 * math.log(20) / (mu - load)
    assert capacity_rps(load, p95_ms, 0.0) == pytest.approx(mu)


def test_answers_that_are_errors_serve_no_one():
    whole = capacity_rps(10.0, 300.0, 0.0)
    assert whole is not None
    assert capacity_rps(10.0, 300.0, 0.25) == pytest.approx(0.75 * whole)
    assert capacity_rps(10.0, 1.0, 1.0) == 0.0
    assert capacity_rps(10.0, 0.0, 0.0) is None
    assert capacity_rps(10.0, float("nan"), 0.0) is None


def test_shares_follow_capacity_within_one_turn_a_cycle():
    candidates = [warm("a", 10.0), warm("b", 20.0), warm("c", 30.0)]
    got = counts(candidates)
    for c in candidates:
        assert c.capacity_rps is not None
        assert abs(got[c.backend_id] - WEIGHTED_CYCLE * c.capacity_rps / 60.0) <= 1


def test_estimates_near_the_mean_count_as_the_mean_and_larger_differences_beyond_the_deadband():
    near = [warm("a", 10.0), warm("b", 10.4), warm("c", 9.7), warm("d", 10.2)]
    banded = replace(S, capacity_deadband=0.05)
    assert max(counts(near, banded).values()) - min(counts(near, banded).values()) <= 1
    assert counts(near, S)["b"] - counts(near, S)["c"] >= 15  # 255 against 237
    # Mean 20: a and c lie 50% off it, and count 45% off (11 and 29 of 60).
    far = counts([warm("a", 10.0), warm("b", 20.0), warm("c", 30.0)], banded)
    assert far["a"] == pytest.approx(WEIGHTED_CYCLE * 11 / 60, abs=1)
    assert far["c"] == pytest.approx(WEIGHTED_CYCLE * 29 / 60, abs=1)


def test_a_backends_turns_are_spread_not_bunched():
    candidates = [warm("a", 10.0), warm("b", 10.0), warm("c", 10.0), warm("d", 10.0)]
    picks = [choose(candidates, t, S).backend_id for t in range(40)]
    # Over any 8 turns in a row, each of four equal backends gets 1 to 3.
    for start in range(len(picks) - 8):
        window = Counter(picks[start : start + 8])
        assert set(window) == {"a", "b", "c", "d"} and max(window.values()) <= 3


def test_an_open_breaker_keeps_open_share_of_its_share():
    candidates = [warm("a", 20.0), warm("b", 20.0, State.OPEN, risk=450.0)]
    assert counts(candidates, replace(S, open_share=1.0))["b"] == pytest.approx(WEIGHTED_CYCLE / 2, abs=1)
    assert counts(candidates, replace(S, open_share=0.5))["b"] == pytest.approx(WEIGHTED_CYCLE / 3, abs=1)
    assert counts(candidates, replace(S, open_share=0.0))["b"] == 0
    half_open = [warm("a", 20.0), warm("b", 20.0, State.HALF_OPEN)]
    # Half-open keeps the mean of open_share and 1: 0.5 x its weight at open_share 0.
    assert counts(half_open, replace(S, open_share=0.0))["b"] == pytest.approx(WEIGHTED_CYCLE / 3, abs=1)


def test_turns_an_open_breaker_gives_up_are_rerouted_and_say_so():
    candidates = [warm("a", 20.0), warm("b", 20.0, State.OPEN, risk=450.0)]
    choices = [choose(candidates, t, replace(S, open_share=0.0)) for t in range(20)]
    moved = [c for c in choices if c.action is Action.REROUTE]
    assert moved and all(c.backend_id == "a" and c.skipped == ("b",) for c in moved)
    assert "b breaker OPEN (forecast 450 ms" in moved[0].reason
    every_open = [warm("a", 20.0, State.OPEN, risk=400.0), warm("b", 20.0, State.OPEN, risk=450.0)]
    last = choose(every_open, 0, replace(S, open_share=0.0))
    assert last.action is Action.LAST_RESORT and "weighted rotation over all of them" in last.reason


def test_the_reason_gives_the_share_and_the_capacity_it_comes_from():
    candidates = [warm("a", 10.0), warm("b", 30.0, State.OPEN, risk=450.0)]
    by_backend = {c.backend_id: c for c in (choose(candidates, t, S) for t in range(8))}
    assert by_backend["a"].reason == (
        "a by weighted rotation: its estimated capacity is 25% of the candidates' (10 of 40 requests/s); "
        "forecast 100 ms against 300 ms"
    )
    assert by_backend["b"].action is Action.PRIMARY
    assert by_backend["b"].reason.endswith("breaker OPEN (threshold 300 ms within 300 s): it keeps 70% of its share")


def test_a_cold_backend_weighs_the_mean_of_the_known_ones():
    cold = Candidate("c", State.CLOSED, cold=True, points=2, risk_ms=None, basis=Basis.COLD_START, covered_s=10)
    candidates = [warm("a", 10.0), warm("b", 30.0), cold]
    got = counts(candidates)
    assert got["c"] == pytest.approx(WEIGHTED_CYCLE / 3, abs=1)
    cold_choice = next(choose(candidates, t, S) for t in range(20) if choose(candidates, t, S).backend_id == "c")
    assert cold_choice.action is Action.ROUND_ROBIN
    assert "weighted rotation at the mean capacity of the known backends" in cold_choice.reason


def test_without_capacities_or_when_off_it_is_round_robin():
    plain = [warm("a", None), warm("b", None)]
    assert [choose(plain, t, S).backend_id for t in range(4)] == ["a", "b", "a", "b"]
    weighed = [warm("a", 10.0), warm("b", 30.0)]
    off = replace(S, share_by_capacity=False)
    assert [choose(weighed, t, off).backend_id for t in range(4)] == ["a", "b", "a", "b"]


def update(backend_id: str, at: float, load: float, latency_ms: float) -> Update:
    values = np.zeros(N_FEATURES)
    values[FEATURE_NAMES.index("load")] = load
    values[FEATURE_NAMES.index("latency_ms")] = latency_ms
    return Update(backend_id, at, 30, latency_ms, None, values, covered_s=290.0)


def test_the_table_smooths_each_backends_estimate_over_intervals():
    table = RoutingTable(replace(S, capacity_smoothing=0.5))
    # Two intervals whose single estimates are 30 and 60 requests/s.
    table.apply([update("a", 10.0, 0.0, 1000.0 * math.log(20) / 30.0)])
    table.apply([update("a", 20.0, 0.0, 1000.0 * math.log(20) / 60.0)])
    [entry] = table.entries()
    assert entry.capacity_rps == pytest.approx(45.0)


def test_a_backend_slow_while_the_others_are_not_is_capped_at_what_it_serves_within_the_threshold():
    # 160 requests/s at a p95 of 1500 ms reads as a queue near saturation at
    # about 162 requests/s; with the others at 70 ms it is not one the
    # router should feed more: its estimate is capped at 160 x 300 / 1500.
    table = RoutingTable(replace(S, capacity_smoothing=1.0))
    table.apply([update("a", 10.0, 160.0, 1500.0), update("b", 10.0, 20.0, 70.0), update("c", 10.0, 20.0, 70.0)])
    capacity = {e.backend_id: e.capacity_rps for e in table.entries()}
    assert capacity["a"] == pytest.approx(32.0)
    assert capacity["b"] == pytest.approx(20.0 + 1000.0 * math.log(20) / 70.0)
    # A pool slow all together (a flash crowd) is not capped: its estimates are what it serves.
    crowd = RoutingTable(replace(S, capacity_smoothing=1.0))
    crowd.apply([update(b, 10.0, 160.0, 1500.0) for b in ("a", "b", "c")])
    assert [e.capacity_rps for e in crowd.entries()] == [pytest.approx(160.0 + 1000.0 * math.log(20) / 1500.0)] * 3
    off = RoutingTable(replace(S, capacity_smoothing=1.0, overload_guard=False))
    off.apply([update("a", 10.0, 160.0, 1500.0), update("b", 10.0, 20.0, 70.0), update("c", 10.0, 20.0, 70.0)])
    assert off.entries()[0].capacity_rps == pytest.approx(160.0 + 1000.0 * math.log(20) / 1500.0)
