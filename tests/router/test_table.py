import numpy as np
import pytest

from services.common.errors import FailedPrecondition, InvalidInput
from services.router import risk
from services.router.outcomes import DecisionLog
from services.router.policy import Action, Basis, Settings, State
from services.router.policy_shadow import PolicyShadow
from services.router.table import ModelFacts, RoutingTable, Update

# open_after_s=0: one update opens a breaker; the debounce has its own tests.
S = Settings(threshold_ms=300, hysteresis=0.15, min_open_s=30, recovery_s=60, warm_after_s=40, open_after_s=0)


def update(backend_id: str, t: float, predicted: float | None, points: int = 30, observed: float = 100.0) -> Update:
    """An update of a window of `points` points 10 s apart."""
    covered = 10.0 * (points - 1)
    return Update(backend_id, as_of=t, points=points, observed_ms=observed, predicted_ms=predicted, covered_s=covered)


def test_blind_router_answers_round_robin_over_the_candidates():
    table = RoutingTable(S)
    first, second = table.decide(["x", "y"]), table.decide(["x", "y"])
    assert (first.choice.backend_id, second.choice.backend_id) == ("x", "y")
    assert first.basis is Basis.NO_TELEMETRY
    assert first.choice.action is Action.ROUND_ROBIN


def test_blind_router_without_candidates_is_a_failed_precondition():
    with pytest.raises(FailedPrecondition, match="candidates"):
        RoutingTable(S).decide([])


def test_unknown_empty_and_repeated_candidates_are_invalid():
    table = RoutingTable(S)
    table.apply([update("a", 10, 100)])
    with pytest.raises(InvalidInput, match=r"candidates\[1\]: unknown backend 'nope'"):
        table.decide(["a", "nope"])
    with pytest.raises(InvalidInput, match=r"candidates\[0\]: must not be empty"):
        table.decide([""])
    with pytest.raises(InvalidInput, match="once"):
        table.decide(["a", "a"])


def test_forecast_drives_the_breaker_and_decisions_avoid_it():
    table = RoutingTable(S)
    table.apply([update("a", 10, 100), update("b", 10, 120)])
    table.apply([update("b", 20, 340)])
    entries = {e.backend_id: e for e in table.entries()}
    assert entries["b"].breaker.state is State.OPEN
    assert entries["b"].breaker.since == 20
    picks = [table.decide([]) for _ in range(4)]
    assert {p.choice.backend_id for p in picks} == {"a"}
    assert [p.choice.action for p in picks] == [Action.PRIMARY, Action.REROUTE] * 2


def test_cold_backend_does_not_drive_its_breaker():
    table = RoutingTable(S)
    table.apply([update("a", 10, 900, points=3)])
    [entry] = table.entries()
    assert entry.breaker.state is State.CLOSED
    assert entry.basis is Basis.COLD_START
    assert table.decide([]).choice.action is Action.ROUND_ROBIN


def test_without_a_forecast_the_breaker_reacts_to_observed_latency():
    table = RoutingTable(S)
    table.apply([update("a", 10, None, observed=350), update("b", 10, None, observed=100)])
    entries = {e.backend_id: e for e in table.entries()}
    assert entries["a"].basis is Basis.OBSERVED_LATENCY
    assert entries["a"].breaker.state is State.OPEN
    decided = table.decide(["a", "b"])
    assert decided.choice.backend_id == "b"
    assert decided.basis is Basis.OBSERVED_LATENCY
    assert decided.model_version == ""


def test_changes_are_published_per_backend():
    table = RoutingTable(S)
    sub = table.changes.subscribe()
    table.apply([update("a", 10, 100)])
    table.apply([update("a", 20, 100), update("b", 20, 100)])
    assert sub.wait(0) == {"a", "b"}
    table.changes.close()
    assert sub.wait(0) is None


def test_risk_report_orders_by_forecast_and_explains_with_model_statistics():
    table = RoutingTable(S)
    names = ("load", "latency_ms")
    model = ModelFacts("v1", 300, names, {"load": 0.8, "latency_ms": 0.2}, (50.0, 100.0), (10.0, 20.0))
    table.apply(
        [
            Update("a", 10, 30, 110, 150, np.array([55.0, 110.0]), covered_s=290),
            Update("b", 10, 30, 200, 420, np.array([95.0, 200.0]), covered_s=290),
            Update("c", 10, 2, 90, None, np.array([40.0, 90.0]), covered_s=10),
        ]
    )
    risks = risk.report(table.entries(), model, S)
    assert [r.backend_id for r in risks] == ["b", "a", "c"]
    assert risks[0].breaches and not risks[1].breaches
    assert risks[0].headroom_ms == pytest.approx(-120)
    top = risks[0].drivers[0]
    assert top.feature == "load"
    assert top.z_score == pytest.approx(4.5)
    assert top.weight == pytest.approx(0.8 * 4.5)
    assert risks[2].drivers == ()


def test_each_decision_gets_an_id_that_its_outcome_is_reported_with():
    log = DecisionLog(instance="r1")
    table = RoutingTable(S, log)
    table.apply([update("a", 10, 100), update("b", 10, 120)])
    decided = table.decide([])
    assert decided.decision_id == "r1-1"
    got = log.get(decided.decision_id)
    assert got is not None
    assert (got.backend_id, got.forecast_ms, got.as_of) == ("a", 100, 10)
    assert table.decide([]).decision_id == "r1-2"


def test_without_telemetry_decisions_are_still_logged_without_an_event_time():
    log = DecisionLog(instance="r1")
    decided = RoutingTable(S, log).decide(["x", "y"])
    got = log.get(decided.decision_id)
    assert got is not None and (got.backend_id, got.as_of, got.forecast_ms) == ("x", 0.0, None)


def test_the_shadow_sees_every_update_and_decision():
    log = DecisionLog(instance="r1")
    shadow = PolicyShadow(Settings(threshold_ms=250, warm_after_s=40, open_after_s=0))
    table = RoutingTable(S, log, shadow)
    # a at 280 ms: under the live 300 ms threshold, over the shadow's 250.
    table.apply([update("a", 10, 280), update("b", 10, 100)])
    assert shadow.state("a") is State.OPEN
    chosen = [table.decide([]).choice.backend_id for _ in range(4)]
    assert chosen == ["a", "b", "a", "b"]
    assert (shadow.decisions, shadow.differing) == (4, 2)
    assert [(p.live_backend, p.alternative_backend) for p in shadow.pairs()] == [("a", "b"), ("a", "b")]


def test_a_silent_open_backend_half_opens_once_the_fleet_has_moved_on_past_the_bound():
    # b opens, then sends nothing (drained, it has nothing to report); a
    # reports every 60 s. The fleet's event time, not b's, runs the bound.
    shadow = PolicyShadow(Settings(threshold_ms=250, warm_after_s=40, open_after_s=0))
    table = RoutingTable(S, shadow=shadow)
    table.apply([update("a", 100, 100), update("b", 100, 900)])
    assert table.entries(["b"])[0].breaker.state is State.OPEN
    for t in range(160, 400, 60):
        assert table.apply([update("a", t, 100)]) == ["a"]
        assert {table.decide([]).choice.backend_id for _ in range(4)} == {"a"}
    assert table.entries(["b"])[0].breaker.state is State.OPEN and shadow.state("b") is State.OPEN
    assert table.apply([update("a", 400, 100)]) == ["a", "b"]
    [b] = table.entries(["b"])
    assert (b.breaker.state, b.breaker.since, b.as_of) == (State.HALF_OPEN, 400, 100)
    assert shadow.state("b") is State.HALF_OPEN
    decided = [table.decide([]) for _ in range(8)]
    probes = [d for d in decided if d.choice.backend_id == "b"]
    assert len(probes) == 2  # every other turn of its share
    assert {d.state for d in probes} == {State.HALF_OPEN}
    # Serving again, it reports low latency: probing, then closed after recovery_s.
    table.apply([update("b", 420, 100)])
    table.apply([update("b", 480, 100)])
    assert table.entries(["b"])[0].breaker.state is State.CLOSED
    report = risk.report(table.entries(), ModelFacts(), S)
    assert {r.backend_id: r.state for r in report} == {"a": State.CLOSED, "b": State.CLOSED}


def test_what_the_risk_report_and_decisions_say_of_a_cold_backend_is_what_placement_does():
    table = RoutingTable(S)
    table.apply([update("a", 100, 100), update("b", 100, 900)])
    # b's window restarts (one point): cold, no figure, still drained.
    table.apply([update("b", 200, None, points=1), update("a", 200, 100)])
    [r_b] = [r for r in risk.report(table.entries(), ModelFacts(), S) if r.backend_id == "b"]
    assert (r_b.state, r_b.basis, r_b.breaches) == (State.OPEN, Basis.COLD_START, False)
    assert {table.decide([]).choice.backend_id for _ in range(6)} == {"a"}
