import pytest
from scipy.stats import binomtest  # type: ignore[import-untyped]

from services.router.outcomes import DecisionLog
from services.router.policy import Basis, Candidate, Settings, State
from services.router.policy_shadow import Pair, PolicyShadow, compare, mcnemar_exact
from services.router.rotation import Rotation

LIVE = Settings(threshold_ms=300, open_after_s=0)
ALT = Settings(threshold_ms=250, open_after_s=0)


def test_the_alternative_breaker_runs_on_the_same_risks():
    shadow = PolicyShadow(ALT)
    shadow.observe("a", 10.0, 30, 270.0, 0.0, covered_s=290)
    shadow.observe("b", 10.0, 30, 100.0, 0.0, covered_s=290)
    assert shadow.state("a") is State.OPEN  # 270 ms is over 250 ms, not over 300 ms
    assert shadow.state("b") is State.CLOSED
    assert shadow.state("c") is None


def test_a_cold_backend_does_not_drive_its_breaker():
    shadow = PolicyShadow(ALT)
    shadow.observe("a", 10.0, 2, 900.0, 900.0, covered_s=10)
    assert shadow.state("a") is State.CLOSED


def test_says_what_the_alternative_would_have_chosen():
    live, shadow = Rotation(LIVE), PolicyShadow(ALT)
    for backend, risk in (("a", 270.0), ("b", 100.0)):
        # What the live table holds: at 300 ms both breakers stay closed.
        live.put(Candidate(backend, State.CLOSED, cold=False, points=30, risk_ms=risk, basis=Basis.FORECAST))
        shadow.observe(backend, 10.0, 30, risk, 0.0, covered_s=290)
    picks = []
    for i in range(4):
        chosen, _ = live.pick([])
        alternative = shadow.pick([])
        shadow.record(f"d{i}", float(i), chosen.backend_id, alternative.backend_id)
        picks.append((chosen.backend_id, alternative.backend_id))
    # Live alternates a, b; the alternative keeps every turn off a.
    assert picks == [("a", "b"), ("b", "b"), ("a", "b"), ("b", "b")]
    assert (shadow.decisions, shadow.differing) == (4, 2)
    assert [p.decision_id for p in shadow.pairs()] == ["d0", "d2"]


def test_picks_round_robin_before_any_telemetry():
    shadow = PolicyShadow(ALT)
    assert shadow.pick(["x", "y"]).backend_id == "x"


def test_pairs_are_bounded():
    shadow = PolicyShadow(ALT, max_pairs=2)
    for i in range(3):
        shadow.record(f"d{i}", 0.0, "a", "b")
    assert [p.decision_id for p in shadow.pairs()] == ["d1", "d2"]
    assert shadow.differing == 3


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 5), (3, 9), (10, 2), (25, 25), (40, 12)])
def test_mcnemar_exact_is_the_two_sided_binomial_test(b, c):
    want = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(want)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_compares_breaches_where_the_choices_differ():
    clock = Clock()
    log = DecisionLog(clock=clock, instance="r1")
    pairs = []
    # 20 differing decisions: live sent to a (breaching, 400 ms), the
    # alternative would have sent to b, where requests just then saw 120 ms.
    for i in range(20):
        clock.now = float(i * 10)
        live_id = log.record("a", 280.0, "v1")
        log.report_latency(live_id, 400.0)
        other = log.record("b", 100.0, "v1")  # a request that did go to b
        log.report_latency(other, 120.0)
        pairs.append(Pair(live_id, clock.now, "a", "b"))
    pairs.append(Pair(log.record("a", 280.0, "v1"), clock.now, "a", "b"))  # no latency reported
    pairs.append(Pair("r1-999", 1000.0, "a", "b"))  # nothing near it either

    def live_latency(decision_id: str) -> float | None:
        d = log.get(decision_id)
        return d.latency_ms if d else None

    result = compare(pairs, live_latency, log.realised_near, slo_ms=300, match_s=5)
    assert (result.pairs, result.compared, result.missing_live) == (22, 20, 2)
    assert (result.live_breaches, result.alternative_breaches) == (20, 0)
    assert (result.only_live_breached, result.only_alternative_breached) == (20, 0)
    assert result.p_value == pytest.approx(2 / 2**20)
    assert result.significant
    assert "fewer breaches" in result.reason


def test_no_difference_is_not_significant():
    outcomes = {"d0": 400.0, "d1": 100.0, "d2": 400.0, "d3": 100.0}
    alternative = {0.0: 100.0, 1.0: 400.0, 2.0: 400.0, 3.0: 100.0}
    pairs = [Pair(f"d{i}", float(i), "a", "b") for i in range(4)]
    result = compare(pairs, outcomes.get, lambda b, at, within: alternative.get(at), slo_ms=300)
    assert (result.only_live_breached, result.only_alternative_breached) == (1, 1)
    assert result.p_value == 1.0
    assert not result.significant
    assert "no evidence either way" in result.reason


def test_missing_alternative_outcomes_are_counted_not_guessed():
    pairs = [Pair("d0", 0.0, "a", "b")]
    result = compare(pairs, lambda _: 400.0, lambda b, at, within: None, slo_ms=300)
    assert (result.compared, result.missing_alternative) == (0, 1)
    assert "none with both outcomes known" in result.reason
