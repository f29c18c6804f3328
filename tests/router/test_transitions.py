"""The transition log: what changed, and how far ahead of a breach the
breaker opened, read off a real routing table."""

from services.router.policy import Settings, State
from services.router.table import RoutingTable, Update
from services.router.transitions import TransitionLog

S = Settings(threshold_ms=300, hysteresis=0.15, min_open_s=30, recovery_s=60, warm_after_s=40, open_after_s=0)


def feed(table: RoutingTable, log: TransitionLog, backend: str, t: float, forecast: float, observed: float) -> None:
    table.apply([Update(backend, as_of=t, points=30, observed_ms=observed, predicted_ms=forecast, covered_s=290)])
    log.applied([backend])


def test_an_opening_ahead_of_the_breach_has_the_time_between_as_its_lead():
    table = RoutingTable(S)
    log = TransitionLog(table, clock=lambda: 1234.0)
    feed(table, log, "a", 100, 120, 100)
    feed(table, log, "a", 110, 450, 150)  # forecast over: opens while latency is 150 ms
    feed(table, log, "a", 120, 500, 250)
    pending = log.lead("a")
    assert pending is not None and pending.seconds is None  # no breach yet
    feed(table, log, "a", 150, 600, 320)  # the latency reaches the threshold 40 s after the opening
    lead = log.lead("a")
    assert lead is not None and lead.seconds == 40
    totals = log.totals()
    assert (totals.leads, totals.lead_sum_s, totals.unconfirmed) == (1, 40, 0)
    assert totals.transitions == {(State.CLOSED, State.OPEN): 1}
    assert totals.last_applied_at == 1234.0
    [opened] = log.recent()
    assert (opened.backend_id, opened.from_state, opened.to_state, opened.at) == ("a", State.CLOSED, State.OPEN, 110)


def test_an_opening_on_a_latency_already_over_has_no_lead():
    table = RoutingTable(S)
    log = TransitionLog(table)
    feed(table, log, "b", 100, 400, 350)
    lead = log.lead("b")
    assert lead is not None and lead.seconds == 0


def test_a_breaker_that_recovers_without_a_breach_is_counted_unconfirmed():
    table = RoutingTable(S)
    log = TransitionLog(table)
    feed(table, log, "c", 100, 400, 100)  # opens
    feed(table, log, "c", 140, 100, 100)  # half-open after min_open_s
    feed(table, log, "c", 210, 100, 100)  # closed after recovery_s
    totals = log.totals()
    assert totals.unconfirmed == 1 and totals.leads == 0
    assert [(t.from_state, t.to_state) for t in log.recent()] == [
        (State.HALF_OPEN, State.CLOSED),
        (State.OPEN, State.HALF_OPEN),
        (State.CLOSED, State.OPEN),
    ]
    assert log.lead("c") is None
