from dataclasses import replace

import pytest

from services.router.policy import (
    OBSERVED_NOTE,
    OVER_FORECAST_NOTE,
    STALE_NOTE,
    Action,
    Basis,
    Breaker,
    Candidate,
    Settings,
    State,
    choose,
    observe,
)

# open_after_s=0: one figure opens a breaker; TestDebounce runs the default.
S = Settings(threshold_ms=300, hysteresis=0.15, min_open_s=30, recovery_s=60, warm_after_s=40, open_after_s=0)


def warm(backend_id: str, risk: float, state: State = State.CLOSED, probe_due: bool = True) -> Candidate:
    return Candidate(backend_id, state, cold=False, points=30, risk_ms=risk, basis=Basis.FORECAST, probe_due=probe_due)


def cold(backend_id: str, points: int = 2, state: State = State.CLOSED) -> Candidate:
    covered = 10.0 * (points - 1)
    return Candidate(
        backend_id, state, cold=True, points=points, risk_ms=None, basis=Basis.COLD_START, covered_s=covered
    )


class TestObserve:
    def test_a_cold_backend_has_no_figure_and_its_breaker_is_left_alone(self):
        b = Breaker()
        c = observe(b, "a", 4, 900.0, 900.0, 10, S, covered_s=30)
        assert (c.cold, c.risk_ms, c.basis, b.state) == (True, None, Basis.COLD_START, State.CLOSED)

    def test_a_warm_backend_runs_on_the_forecast_when_there_is_one(self):
        b = Breaker()
        c = observe(b, "a", 5, 310.0, 100.0, 10, S, covered_s=40)
        assert (c.cold, c.risk_ms, c.basis, c.state, b.state) == (False, 310.0, Basis.FORECAST, State.OPEN, State.OPEN)

    def test_without_a_forecast_it_runs_on_the_observed_latency(self):
        c = observe(Breaker(), "a", 5, None, 320.0, 10, S, covered_s=40)
        assert (c.risk_ms, c.basis, c.state) == (320.0, Basis.OBSERVED_LATENCY, State.OPEN)

    def test_a_breach_under_way_opens_the_breaker_whatever_the_forecast(self):
        # A model learnt on calm days forecasts calm through a breach: with
        # the observed floor the breaker opens as a reactive one would.
        floored, plain = Breaker(), Breaker()
        c = observe(floored, "a", 5, 200.0, 450.0, 10, S, covered_s=40)
        assert (c.risk_ms, c.basis, c.state) == (450.0, Basis.OBSERVED_OVER_FORECAST, State.OPEN)
        c = observe(plain, "a", 5, 200.0, 450.0, 10, replace(S, observed_floor=False), covered_s=40)
        assert (c.risk_ms, c.basis, c.state) == (200.0, Basis.FORECAST, State.CLOSED)

    def test_the_floor_leaves_a_forecast_above_the_observed_alone(self):
        c = observe(Breaker(), "a", 5, 310.0, 250.0, 10, S, covered_s=40)
        assert (c.risk_ms, c.basis, c.state) == (310.0, Basis.FORECAST, State.OPEN)

    def test_below_the_lower_mark_the_floor_leaves_a_healthy_backend_on_its_forecast(self):
        # The lower mark is 255 ms here: an observed 250 ms could neither open
        # the breaker nor hold it open, so the forecast stays the figure.
        c = observe(Breaker(), "a", 5, 100.0, 250.0, 10, S, covered_s=40)
        assert (c.risk_ms, c.basis) == (100.0, Basis.FORECAST)
        b = Breaker(State.OPEN, since=0)
        c = observe(b, "a", 5, 100.0, 250.0, 60, S, covered_s=40)
        assert (c.basis, c.state) == (Basis.FORECAST, State.HALF_OPEN)
        c = observe(Breaker(State.OPEN, since=0), "a", 5, 100.0, 260.0, 60, S, covered_s=40)
        assert (c.risk_ms, c.basis, c.state) == (260.0, Basis.OBSERVED_OVER_FORECAST, State.OPEN)

    def test_the_reason_says_when_the_observed_latency_overrode_the_forecast(self):
        over = observe(Breaker(), "a", 5, 200.0, 280.0, 10, S, covered_s=40)
        reason = choose([over, warm("b", 100.0)], 0, S).reason
        assert "observed 280 ms" in reason and OVER_FORECAST_NOTE in reason


class TestWarmth:
    def test_warmth_is_time_covered_with_two_points_at_least(self):
        assert S.cold(5, 39.9) and not S.cold(5, 40.0)  # 10 s telemetry: the fifth point
        assert not S.cold(2, 60.0)  # 60 s telemetry: the second point
        assert S.cold(1, 0.0) and Settings(warm_after_s=0).cold(1, 0.0)  # one point defines no slope

    def test_observe_judges_warmth_by_the_covered_time_not_the_count(self):
        sparse = observe(Breaker(), "a", 2, 120.0, 100.0, 10, S, covered_s=60)
        dense = observe(Breaker(), "a", 4, 120.0, 100.0, 10, S, covered_s=30)
        assert (sparse.cold, sparse.basis, dense.cold, dense.basis) == (False, Basis.FORECAST, True, Basis.COLD_START)


class TestSilence:
    """An open breaker with no figure half-opens after probe_after_s (300)."""

    def opened(self) -> Breaker:
        b = Breaker()
        assert b.observe(900, 100, S) is State.OPEN
        return b

    def test_an_open_breaker_without_figures_half_opens_after_the_bound(self):
        b = self.opened()
        assert b.observe(None, 399, S) is None
        assert b.observe(None, 400, S) is State.HALF_OPEN
        assert b.since == 400

    def test_the_bound_counts_from_the_last_figure(self):
        b = self.opened()
        assert b.observe(800, 250, S) is None  # still high: still open, and fresh evidence
        assert b.observe(None, 549, S) is None
        assert b.observe(None, 550, S) is State.HALF_OPEN

    def test_figures_that_stay_high_keep_it_open_however_long(self):
        b = self.opened()
        for t in range(160, 2000, 60):
            assert b.observe(900, t, S) is None
        assert b.state is State.OPEN

    def test_a_closed_or_half_open_breaker_keeps_its_state_without_figures(self):
        closed = Breaker()
        assert closed.observe(None, 10_000, S) is None
        half = self.opened()
        half.observe(100, 130, S)
        assert half.state is State.HALF_OPEN
        assert half.observe(None, 10_000, S) is None

    def test_a_cold_spell_breaks_a_run_of_high_figures(self):
        b = Breaker()
        debounced = Settings(threshold_ms=300, open_after_s=10)
        assert b.observe(900, 10, debounced) is None
        assert b.observe(None, 20, debounced) is None
        assert b.observe(900, 30, debounced) is None  # the run starts again at 30
        assert b.observe(900, 40, debounced) is State.OPEN

    def test_a_cold_backend_is_placed_as_its_breaker_says_and_reported_so(self):
        # It opened while warm, then went cold: it stays drained (not round
        # robin) until the bound half-opens it, then takes every other turn.
        b = self.opened()
        c = observe(b, "b", 1, None, 100.0, 200, S, covered_s=0)
        assert (c.cold, c.state) == (True, State.OPEN)
        picks = [choose([warm("a", 100), c], turn, S).backend_id for turn in range(4)]
        assert picks == ["a"] * 4
        c = observe(b, "b", 1, None, 100.0, 400, S, covered_s=0)
        assert (c.cold, c.state) == (True, State.HALF_OPEN)
        due = choose([warm("a", 100), c], 1, S)
        assert (due.backend_id, due.action) == ("b", Action.ROUND_ROBIN)
        c.probe_due = False
        assert choose([warm("a", 100), c], 1, S).backend_id == "a"


class TestDebounce:
    D = Settings(threshold_ms=300, open_after_s=10)

    def test_one_high_figure_does_not_open(self):
        b = Breaker(since=0)
        assert b.observe(900, 10, self.D) is None
        assert b.observe(200, 20, self.D) is None
        assert b.observe(900, 30, self.D) is None
        assert b.state is State.CLOSED

    def test_figures_over_the_threshold_for_open_after_s_open_it(self):
        b = Breaker(since=0)
        assert b.observe(310, 10, self.D) is None
        assert b.observe(320, 20, self.D) is State.OPEN
        assert b.since == 20

    def test_a_reopening_from_half_open_is_not_delayed(self):
        b = Breaker(State.HALF_OPEN, since=0)
        assert b.observe(290, 10, self.D) is State.OPEN

    def test_the_default_waits_ten_seconds(self):
        assert Settings().open_after_s == 10.0


class TestBreaker:
    def test_opens_when_the_forecast_reaches_the_threshold(self):
        b = Breaker(since=0)
        assert b.observe(299.9, 10, S) is None
        assert b.observe(300.0, 20, S) is State.OPEN
        assert b.since == 20

    def test_stays_open_inside_the_hysteresis_band(self):
        b = Breaker(State.OPEN, since=0)
        # 260 ms is below the threshold but above the lower mark of 255 ms.
        assert b.observe(260, 100, S) is None
        assert b.state is State.OPEN

    def test_stays_open_for_the_minimum_time_even_when_low(self):
        b = Breaker(State.OPEN, since=0)
        assert b.observe(100, 29, S) is None
        assert b.observe(100, 30, S) is State.HALF_OPEN

    def test_half_open_closes_after_the_recovery_time(self):
        b = Breaker(State.HALF_OPEN, since=100)
        assert b.observe(200, 159, S) is None
        assert b.observe(200, 160, S) is State.CLOSED

    def test_half_open_reopens_above_the_lower_mark(self):
        b = Breaker(State.HALF_OPEN, since=100)
        assert b.observe(256, 110, S) is State.OPEN

    def test_noise_around_the_threshold_does_not_flap(self):
        b = Breaker(since=0)
        transitions = [b.observe(risk, t * 10, S) for t, risk in enumerate([310, 290, 305, 295, 301, 280, 299])]
        assert [x for x in transitions if x is not None] == [State.OPEN]


class TestChoose:
    def test_rotates_over_healthy_backends_as_primary(self):
        cands = [warm("a", 100), warm("b", 120), warm("c", 110)]
        picks = [choose(cands, turn, S) for turn in range(6)]
        assert [p.backend_id for p in picks] == ["a", "b", "c", "a", "b", "c"]
        assert {p.action for p in picks} == {Action.PRIMARY}

    def test_cold_backends_are_served_round_robin(self):
        cands = [cold("a"), cold("b")]
        picks = [choose(cands, turn, S) for turn in range(4)]
        assert [p.backend_id for p in picks] == ["a", "b", "a", "b"]
        assert {p.action for p in picks} == {Action.ROUND_ROBIN}
        assert "cold (its 2 points cover 10 of 40 s)" in picks[0].reason

    def test_open_backend_is_skipped_and_its_share_spread(self):
        cands = [warm("a", 100), warm("b", 120), warm("c", 420, State.OPEN)]
        picks = [choose(cands, turn, S) for turn in range(6)]
        assert "c" not in [p.backend_id for p in picks]
        rerouted = [p for p in picks if p.action is Action.REROUTE]
        assert len(rerouted) == 2
        assert all("c breaker OPEN" in p.reason for p in rerouted)
        # c's turns go to a, then b: its share spreads evenly.
        assert [p.backend_id for p in rerouted] == ["a", "b"]
        assert [p.skipped for p in rerouted] == [("c",), ("c",)]
        assert all(p.skipped == () for p in picks if p.action is Action.PRIMARY)

    def test_a_drained_share_spreads_evenly_over_many_turns(self):
        cands = [warm("a", 100), warm("b", 120), warm("c", 420, State.OPEN), warm("d", 110)]
        counts: dict[str, int] = {}
        for turn in range(1200):
            pick = choose(cands, turn, S).backend_id
            counts[pick] = counts.get(pick, 0) + 1
        assert counts == {"a": 400, "b": 400, "d": 400}

    def test_half_open_takes_every_other_turn(self):
        due = choose([warm("a", 100), warm("b", 200, State.HALF_OPEN, probe_due=True)], 1, S)
        skipped = choose([warm("a", 100), warm("b", 200, State.HALF_OPEN, probe_due=False)], 1, S)
        assert (due.backend_id, due.action) == ("b", Action.PRIMARY)
        assert (skipped.backend_id, skipped.action) == ("a", Action.REROUTE)

    def test_all_open_rotates_over_all_and_lists_the_least_risky_first(self):
        cands = [warm("a", 500, State.OPEN), warm("b", 350, State.OPEN), warm("c", 900, State.OPEN)]
        picks = [choose(cands, turn, S) for turn in range(3)]
        assert [p.backend_id for p in picks] == ["a", "b", "c"]
        assert {p.action for p in picks} == {Action.LAST_RESORT}
        assert picks[0].fallbacks == ("b", "c")
        assert picks[2].fallbacks == ("b", "a")
        assert picks[0].skipped == ("b", "c")

    def test_fallbacks_put_healthy_first_and_open_last(self):
        cands = [warm("a", 100), warm("b", 600, State.OPEN), cold("c"), warm("d", 90), warm("e", 200, State.HALF_OPEN)]
        pick = choose(cands, 0, S)
        assert pick.backend_id == "a"
        assert pick.fallbacks == ("d", "e", "c", "b")

    def test_observed_basis_is_named_in_the_reason(self):
        c = Candidate("a", State.CLOSED, cold=False, points=30, risk_ms=120, basis=Basis.OBSERVED_LATENCY)
        assert "observed 120 ms" in choose([c], 0, S).reason

    def test_the_reason_says_when_it_rests_on_observed_latency_or_a_table_no_longer_fed(self):
        c = Candidate("a", State.CLOSED, cold=False, points=30, risk_ms=120, basis=Basis.OBSERVED_LATENCY)
        assert choose([c], 0, S).reason.endswith(f"{OBSERVED_NOTE}")
        assert choose([c], 0, S, stale=True).reason.endswith(f"{OBSERVED_NOTE}{STALE_NOTE}")
        last_resort = choose([warm("a", 400, State.OPEN), warm("b", 500, State.OPEN)], 0, S, stale=True)
        assert last_resort.action is Action.LAST_RESORT and last_resort.reason.endswith(STALE_NOTE)
        assert OBSERVED_NOTE not in last_resort.reason

    def test_needs_a_candidate(self):
        with pytest.raises(ValueError):
            choose([], 0, S)


class TestLeastLoaded:
    """With in-flight counts the choice is least-loaded; an open breaker
    counts Settings.open_penalty (2) requests more."""

    @staticmethod
    def loaded(backend_id: str, in_flight: int, risk: float = 100.0, state: State = State.CLOSED) -> Candidate:
        c = warm(backend_id, risk, state)
        c.in_flight = in_flight
        return c

    def test_fewest_in_flight_wins_whatever_the_turn(self) -> None:
        cands = [self.loaded("a", 3), self.loaded("b", 1), self.loaded("c", 2)]
        picks = {choose(cands, turn, S).backend_id for turn in range(6)}
        assert picks == {"b"}
        assert choose(cands, 0, S).action is Action.PRIMARY
        assert "fewest in flight (1)" in choose(cands, 0, S).reason

    def test_ties_go_to_the_lower_risk_then_the_rotation(self) -> None:
        cands = [self.loaded("a", 1, risk=200), self.loaded("b", 1, risk=100), self.loaded("c", 1, risk=100)]
        assert [choose(cands, turn, S).backend_id for turn in range(3)] == ["b", "b", "c"]

    def test_open_breaker_is_passed_over_until_the_others_are_penalty_busier(self) -> None:
        open_a = self.loaded("a", 0, risk=900, state=State.OPEN)
        moved = choose([open_a, self.loaded("b", 1)], 0, S)
        assert (moved.backend_id, moved.action, moved.skipped) == ("b", Action.REROUTE, ("a",))
        # b has 2 more than a: a's 0 + 2 ties b's 2, the lower risk (b) wins.
        assert choose([open_a, self.loaded("b", 2)], 0, S).backend_id == "b"
        overflow = choose([open_a, self.loaded("b", 3)], 0, S)
        assert (overflow.backend_id, overflow.action) == ("a", Action.LAST_RESORT)
        assert "at least 2 more requests in flight" in overflow.reason

    def test_every_breaker_open_goes_to_the_least_loaded(self) -> None:
        cands = [self.loaded("a", 2, 900, State.OPEN), self.loaded("b", 0, 950, State.OPEN)]
        pick = choose(cands, 0, S)
        assert (pick.backend_id, pick.action) == ("b", Action.LAST_RESORT)
        assert "the least loaded of them" in pick.reason

    def test_without_counts_the_rotation_is_unchanged(self) -> None:
        cands = [warm("a", 100), warm("b", 100)]
        assert [choose(cands, turn, S).backend_id for turn in range(4)] == ["a", "b", "a", "b"]

    def test_a_failing_backend_counts_its_error_load(self) -> None:
        failing = self.loaded("a", 0)
        failing.error_load = 3.0
        moved = choose([failing, self.loaded("b", 2)], 0, S)
        # a counts 0 + 3 against b's 2: b takes it, and the reason says why.
        assert (moved.backend_id, moved.action) == ("b", Action.REROUTE)
        assert moved.reason.startswith("a has been failing: it counts 3.0 more requests in flight")
        assert moved.skipped == ()  # no breaker passed it over
        # Once b is busier still, a takes requests again: failing is load, not exclusion.
        assert choose([failing, self.loaded("b", 4)], 0, S).backend_id == "a"

    def test_the_reason_is_fixed_when_the_choice_is_made(self) -> None:
        failing = self.loaded("a", 0)
        failing.error_load = 3.0
        b = self.loaded("b", 1)
        choice = choose([failing, b], 0, S)
        # The rotation clears counts after each choice; the words, read later, still say what was true.
        failing.error_load, failing.in_flight, b.in_flight = 0.0, None, None
        assert choice.reason.startswith("a has been failing: it counts 3.0 more")

    def test_rate_aware_weighs_the_new_request_by_the_backend_s_speed(self) -> None:
        slow, fast = self.loaded("a", 1), self.loaded("b", 1)
        slow.capacity_rps, fast.capacity_rps = 10.0, 30.0
        # Speeds 0.5 and 1.5 of the mean: a counts 1 + 2, b 1 + 0.67.
        pick = choose([slow, fast], 0, S)
        assert (pick.backend_id, pick.action) == ("b", Action.PRIMARY)
        assert "least loaded for its speed (1 in flight, capacity 30 requests/s)" in pick.reason
        # Off, the counts tie and the rotation's turn decides.
        off = replace(S, rate_aware=False)
        assert choose([slow, fast], 0, off).backend_id == "a"
        assert "fewest in flight (1)" in choose([slow, fast], 0, off).reason
        # b two requests busier: a's 1 + 2 beats b's 3 + 0.67.
        fast.in_flight = 3
        assert choose([slow, fast], 0, S).backend_id == "a"

    def test_a_slow_backend_never_counts_more_than_an_open_one(self) -> None:
        crawling, fast = self.loaded("a", 0), self.loaded("b", 3)
        crawling.capacity_rps, fast.capacity_rps = 0.0, 40.0
        # a's speed is 0: its request counts 1 + open_penalty (3), not infinitely many; b counts 3 + 0.5.
        assert choose([crawling, fast], 1, S).backend_id == "a"
        fast.in_flight = 2
        assert choose([crawling, fast], 0, S).backend_id == "b"


def test_an_unproven_models_forecast_is_kept_out_of_the_breaker():
    b = Breaker()
    c = observe(b, "a", 5, 900.0, 120.0, 10, S, proven=False, covered_s=40)
    assert (c.risk_ms, c.basis, c.state) == (120.0, Basis.MODEL_UNPROVEN, State.CLOSED)
    c = observe(b, "a", 5, 100.0, 320.0, 20, S, proven=False, covered_s=50)
    assert (c.risk_ms, c.basis, c.state) == (320.0, Basis.MODEL_UNPROVEN, State.OPEN)
