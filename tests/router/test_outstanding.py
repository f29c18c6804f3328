import pytest

from services.router import outstanding
from services.router.outcomes import DecisionLog
from services.router.outstanding import MAX_AGE_S, Outstanding
from services.router.policy import Action, Settings
from services.router.policy_shadow import PolicyShadow
from services.router.table import COUNTED_NOTE, RoutingTable, Update


def reported(o: Outstanding, n: int, at: float = 0.0) -> None:
    """n decisions issued and ended by an outcome at once."""
    for i in range(n):
        o.issued(f"warm-{at}-{i}", "z", at)
        assert o.ended(f"warm-{at}-{i}", at + 0.1, 100.0)


def test_counts_wait_until_the_callers_are_seen_to_report():
    o = Outstanding()
    o.issued("d1", "a", 0.0)
    assert o.counts(1.0) is None
    reported(o, 200)
    assert o.counts(1.0) is None
    reported(o, 50)
    assert o.reported_share > outstanding.MIN_REPORTED
    assert o.counts(1.0) == {"a": 1}


def test_an_outcome_ends_its_decision_once():
    o = Outstanding()
    reported(o, 300)
    o.issued("d1", "a", 0.0)
    o.issued("d2", "a", 0.0)
    o.issued("d3", "b", 0.0)
    assert o.ended("d2", 0.1, 100.0)
    assert not o.ended("d2", 0.1, 100.0)
    assert not o.ended("never issued", 0.1, 100.0)
    assert o.counts(1.0) == {"a": 1, "b": 1}


def test_unreported_decisions_age_out_and_switch_the_counts_off():
    o = Outstanding()
    reported(o, 300)
    for i in range(20):
        o.issued(f"lost-{i}", "a", float(i))
    assert o.counts(19.0) == {"a": 20}
    # The first ten are past MAX_AGE_S: they stop counting, and a caller
    # that lets that many go unreported is no longer trusted to report.
    assert o.counts(9.5 + MAX_AGE_S) is None
    assert o._counts == {"a": 10}
    assert o.reported_share < outstanding.MIN_REPORTED


def report_each(o: Outstanding, prefix: str, start: float, after_s: float, latency_ms: float) -> None:
    """300 requests to backend a, one a second from `start`, each reported
    `after_s` after its decision with `latency_ms`."""
    for i in range(300):
        o.issued(f"{prefix}{i}", "a", start + i)
        assert o.ended(f"{prefix}{i}", start + i + after_s, latency_ms)


def test_counts_are_not_used_while_reports_lag_the_requests_they_report():
    o = Outstanding()
    # Requests of 50 ms reported half a second after they ended.
    report_each(o, "d", 0.0, 0.55, 50.0)
    o.issued("late", "a", 300.0)
    assert o.reported_share > outstanding.MIN_REPORTED
    assert o.counts(300.0) is None
    # Reported as they end, the lag falls and the counts come back.
    report_each(o, "e", 400.0, 0.05, 50.0)
    o.issued("on time", "b", 700.0)
    assert o.counts(700.0) == {"b": 1}


def test_counts_are_not_used_while_the_reported_latencies_run_ahead_of_the_clock():
    o = Outstanding()
    # Requests said to take 200 ms, reported 5 ms after they were decided:
    # a caller replaying or simulating time, not one whose requests are in flight.
    report_each(o, "d", 0.0, 0.005, 200.0)
    o.issued("ahead", "a", 300.0)
    assert o.reported_share > outstanding.MIN_REPORTED
    assert o.counts(300.0) is None
    # A coarse clock that reads a 50 ms request as ended after 40 ms is within the bound.
    o = Outstanding()
    report_each(o, "d", 0.0, 0.04, 50.0)
    o.issued("coarse", "b", 300.0)
    assert o.counts(300.0) == {"b": 1}


def test_pending_decisions_are_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(outstanding, "MAX_PENDING", 5)
    o = Outstanding()
    for i in range(8):
        o.issued(f"d{i}", "a", 0.0)
    assert len(o._pending) == 5
    assert not o.ended("d0", 0.1)
    assert o.ended("d7", 0.1)


def update(backend_id: str, t: float) -> Update:
    return Update(backend_id, as_of=t, points=30, observed_ms=100.0, predicted_ms=100.0, covered_s=290.0)


def table(settings: Settings | None = None, *, reported: int = 0) -> RoutingTable:
    """A table of two warm backends, after `reported` decisions whose ends
    were each reported at once."""
    t = RoutingTable(settings or Settings(), DecisionLog(clock=lambda: 1000.0), clock=lambda: 1000.0)
    t.apply([update("a", 10), update("b", 10)])
    for _ in range(reported):
        d = t.decide(["a", "b"])
        t.note_outcome(d.choice.backend_id, False, d.decision_id, 0.0)
    return t


def test_a_table_whose_callers_report_places_least_loaded_on_its_own_counts():
    t = table(reported=300)
    # Requests that do not end pile up on neither backend: each choice
    # goes where fewer are outstanding.
    held = [t.decide(["a", "b"]) for _ in range(6)]
    assert all(d.load_aware for d in held[1:])
    assert COUNTED_NOTE in held[-1].choice.reason
    assert sorted(d.choice.backend_id for d in held) == ["a", "a", "a", "b", "b", "b"]
    # Once b's have ended, b is the least loaded, three times over.
    for d in held:
        if d.choice.backend_id == "b":
            t.note_outcome("b", False, d.decision_id)
    assert [t.decide(["a", "b"]).choice.backend_id for _ in range(3)] == ["b", "b", "b"]


def test_without_reports_or_with_the_setting_off_the_rotation_decides():
    first = table().decide(["a", "b"])
    assert not first.load_aware and COUNTED_NOTE not in first.choice.reason
    off = table(Settings(count_reported=False), reported=300)
    held = [off.decide(["a", "b"]) for _ in range(4)]
    assert not any(d.load_aware for d in held)
    assert all(COUNTED_NOTE not in d.choice.reason for d in held)
    assert all(d.choice.action in (Action.PRIMARY, Action.ROUND_ROBIN) for d in held)


def test_a_caller_that_sends_counts_is_not_second_guessed():
    t = table(reported=300)
    # With nothing outstanding the rotation decides; then the counts do.
    held = [t.decide(["a", "b"]) for _ in range(4)]
    assert [COUNTED_NOTE in d.choice.reason for d in held] == [False, True, True, True]
    given = t.decide(["a", "b"], {"a": 0, "b": 7})
    assert given.choice.backend_id == "a" and COUNTED_NOTE not in given.choice.reason


def test_the_policy_shadow_sees_the_counts_the_live_choice_saw():
    # A shadow with the live settings must agree with every live choice,
    # counts from outcomes included.
    shadow = PolicyShadow(Settings())
    now = [1000.0]
    t = RoutingTable(Settings(), DecisionLog(clock=lambda: now[0]), shadow, clock=lambda: now[0])
    for k in range(20):
        t.apply([update("a", 10.0 * k), update("b", 10.0 * k)])
        decided = [t.decide(["a", "b"]) for _ in range(20)]
        now[0] += 0.1  # requests of 100 ms, reported as they end
        for d in decided[:15]:
            t.note_outcome(d.choice.backend_id, False, d.decision_id, 100.0)
    assert COUNTED_NOTE in decided[-1].choice.reason
    assert shadow.decisions == 400 and shadow.differing == 0
