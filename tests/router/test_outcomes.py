import math

import pytest

from services.router.outcomes import BLOCK, DecisionLog, Recorded, Status


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def log(clock: Clock | None = None, **kwargs) -> DecisionLog:
    return DecisionLog(clock=clock or Clock(), instance="r1", **kwargs)


def test_records_a_decision_and_joins_its_outcomes():
    d = log()
    decision_id = d.record("gpu-a", 120.0, "v3")
    assert decision_id == "r1-1"
    assert d.report_latency(decision_id, 95.0).status is Status.ACCEPTED
    assert d.report_quality(decision_id, 0.8).status is Status.ACCEPTED
    got = d.get(decision_id)
    assert got is not None
    assert (got.backend_id, got.decided_at, got.forecast_ms, got.model_version) == ("gpu-a", 1000.0, 120.0, "v3")
    assert (got.latency_ms, got.quality) == (95.0, 0.8)


def test_quality_may_come_before_latency():
    d = log()
    decision_id = d.record("gpu-a", None, "")
    assert d.report_quality(decision_id, 0.5).status is Status.ACCEPTED
    assert d.report_latency(decision_id, 80.0).status is Status.ACCEPTED


def test_the_same_value_again_is_a_duplicate_a_different_one_is_rejected():
    d = log()
    decision_id = d.record("gpu-a", 120.0, "v3")
    d.report_latency(decision_id, 95.0)
    again = d.report_latency(decision_id, 95.0)
    assert again.status is Status.DUPLICATE
    other = d.report_latency(decision_id, 96.0)
    assert other.status is Status.REJECTED
    assert "already has 95.0" in other.reason
    got = d.get(decision_id)
    assert got is not None and got.latency_ms == 95.0
    assert d.stats()["gpu-a"].outcomes == 1  # the duplicate was not counted twice


@pytest.mark.parametrize(
    ("decision_id", "why"),
    [
        ("r1-99", "never issued"),
        ("r2-1", "another router instance"),
        ("nonsense", "not an id this router issues"),
        ("r1-x", "not an id this router issues"),
        ("", "not an id this router issues"),
        # Digits int() refuses, or reads as another name of r1-1.
        ("r1-\u00b2", "not an id this router issues"),
        ("r1-" + "9" * 5000, "not an id this router issues"),
        ("r1-\u0661", "not an id this router issues"),
        ("r1-01", "not an id this router issues"),
        ("r1-0", "not an id this router issues"),
    ],
)
def test_unknown_ids_are_rejected_with_a_reason(decision_id, why):
    d = log()
    d.record("gpu-a", 120.0, "v3")
    receipt = d.report_latency(decision_id, 95.0)
    assert receipt.status is Status.REJECTED
    assert why in receipt.reason


def test_decisions_expire_by_age():
    clock = Clock()
    d = log(clock, max_age_s=60)
    old = d.record("gpu-a", 120.0, "v3")
    clock.now += 30
    young = d.record("gpu-b", 120.0, "v3")
    clock.now += 31
    receipt = d.report_latency(old, 95.0)
    assert receipt.status is Status.REJECTED and "expired" in receipt.reason
    assert d.report_latency(young, 95.0).status is Status.ACCEPTED
    assert len(d) == 1


def test_decisions_are_bounded_by_count_oldest_first():
    d = log(max_decisions=2)
    ids = [d.record("gpu-a", None, "") for _ in range(3)]
    assert d.report_latency(ids[0], 1.0).status is Status.REJECTED
    assert [d.report_latency(i, 1.0).status for i in ids[1:]] == [Status.ACCEPTED, Status.ACCEPTED]
    assert len(d) == 2


# 1e300 is finite, but beyond what the feature store takes in a summary: were
# it accepted, the whole bucket's summary would be refused there.
@pytest.mark.parametrize("latency", [-1.0, math.nan, math.inf, 1e300, 1e9 + 1])
def test_a_latency_out_of_range_is_rejected(latency):
    d = log()
    decision_id = d.record("gpu-a", None, "")
    receipt = d.report_latency(decision_id, latency)
    assert receipt.status is Status.REJECTED and "latency_ms" in receipt.reason
    # The decision still takes a valid report afterwards.
    assert d.report_latency(decision_id, 1.0).status is Status.ACCEPTED


@pytest.mark.parametrize("quality", [-0.1, 1.1, math.nan])
def test_a_quality_out_of_range_is_rejected(quality):
    d = log()
    receipt = d.report_quality(d.record("gpu-a", None, ""), quality)
    assert receipt.status is Status.REJECTED and "quality" in receipt.reason


def test_realised_latency_per_backend():
    clock = Clock()
    d = log(clock, threshold_ms=300)
    latencies = [float(v) for v in range(10, 210, 10)] + [400.0]  # 21 outcomes
    ids = []
    for _ in latencies:
        ids.append(d.record("gpu-a", None, ""))
        clock.now += 1
    for decision_id, latency in reversed(list(zip(ids, latencies, strict=True))):  # out of order
        d.report_latency(decision_id, latency)
    d.report_latency(d.record("gpu-b", None, ""), 50.0)
    stats = d.stats()
    a = stats["gpu-a"]
    assert (a.outcomes, a.max_ms, a.breaches) == (21, 400.0, 1)
    assert a.mean_ms == pytest.approx((sum(range(10, 210, 10)) + 400) / 21)
    assert a.p95_ms == 200.0  # the 20th of 21 sorted values
    assert stats["gpu-b"].outcomes == 1


def test_realised_near_finds_the_closest_outcome_in_time():
    clock = Clock(0.0)
    d = log(clock)
    for t, latency in [(10.0, 100.0), (20.0, 200.0), (40.0, 400.0)]:
        clock.now = t
        decision_id = d.record("gpu-a", None, "")
        d.report_latency(decision_id, latency)
    assert d.realised_near("gpu-a", 24.0, 5.0) == 200.0
    assert d.realised_near("gpu-a", 36.0, 5.0) == 400.0
    assert d.realised_near("gpu-a", 30.0, 5.0) is None  # nothing within 5 s
    assert d.realised_near("gpu-b", 20.0, 5.0) is None


def test_outcomes_kept_per_backend_are_bounded():
    d = log(outcomes_per_backend=3)
    for latency in (1.0, 2.0, 3.0, 4.0):
        d.report_latency(d.record("gpu-a", None, ""), latency)
    assert d.stats()["gpu-a"].outcomes == 3
    assert d.stats()["gpu-a"].max_ms == 4.0


def test_each_start_issues_ids_of_its_own():
    assert DecisionLog().instance != DecisionLog().instance
    with pytest.raises(ValueError, match="instance"):
        DecisionLog(instance="a-b")


def test_one_outcome_may_report_latency_and_quality_together():
    d = log()
    decision_id = d.record("gpu-a", 120.0, "v3", as_of=5000.0)
    receipt = d.report(decision_id, latency_ms=95.0, quality=0.7)
    assert receipt.status is Status.ACCEPTED
    assert receipt.recorded == Recorded("gpu-a", 5000.0, 95.0, 0.7)
    # Resent: a duplicate, with nothing to forward.
    again = d.report(decision_id, latency_ms=95.0, quality=0.7)
    assert (again.status, again.recorded) == (Status.DUPLICATE, None)
    assert "latency_ms, quality" in again.reason


def test_a_report_adding_quality_to_a_known_latency_forwards_only_the_quality():
    d = log()
    decision_id = d.record("gpu-a", 120.0, "v3", as_of=5000.0)
    d.report(decision_id, latency_ms=95.0)
    receipt = d.report(decision_id, latency_ms=95.0, quality=0.4)
    assert receipt.status is Status.ACCEPTED
    assert receipt.recorded == Recorded("gpu-a", 5000.0, None, 0.4)


def test_a_contradicting_field_rejects_the_whole_outcome():
    d = log()
    decision_id = d.record("gpu-a", 120.0, "v3")
    d.report(decision_id, latency_ms=95.0)
    receipt = d.report(decision_id, latency_ms=99.0, quality=0.4)
    assert receipt.status is Status.REJECTED and receipt.reason.startswith("latency_ms:")
    got = d.get(decision_id)
    assert got is not None and got.quality is None  # the quality of that outcome was not taken


def test_failed_is_quality_zero_and_cannot_carry_another_quality():
    d = log()
    first, second = d.record("gpu-a", None, ""), d.record("gpu-a", None, "")
    assert d.report(first, failed=True).status is Status.ACCEPTED
    got = d.get(first)
    assert got is not None and got.quality == 0.0
    bad = d.report(second, quality=0.5, failed=True)
    assert bad.status is Status.REJECTED and bad.reason.startswith("failed:")


def test_an_outcome_reporting_nothing_is_rejected():
    d = log()
    receipt = d.report(d.record("gpu-a", None, ""))
    assert receipt.status is Status.REJECTED and "none of" in receipt.reason


def test_ids_stay_exact_across_blocks_and_memory_is_given_back():
    clock = Clock()
    d = log(clock, max_decisions=BLOCK + 10)
    ids = [d.record(f"gpu-{i % 3}", float(i), "v1", as_of=float(i)) for i in range(3 * BLOCK)]
    # Only the newest BLOCK + 10 are held, exactly; older blocks were dropped.
    assert d.report_latency(ids[-(BLOCK + 11)], 1.0).status is Status.REJECTED
    assert d.report_latency(ids[-(BLOCK + 10)], 1.0).status is Status.ACCEPTED
    assert len(d) == BLOCK + 10
    assert len(d._blocks) <= 3
    got = d.get(ids[-1])
    assert got is not None
    assert (got.backend_id, got.forecast_ms, got.as_of, got.model_version) == (
        f"gpu-{(3 * BLOCK - 1) % 3}",
        float(3 * BLOCK - 1),
        float(3 * BLOCK - 1),
        "v1",
    )


def test_old_blocks_are_dropped_by_age():
    clock = Clock()
    d = log(clock, max_age_s=60)
    for _ in range(BLOCK):
        d.record("gpu-a", None, "")
    clock.now += 61
    d.record("gpu-a", None, "")  # starts a block; the first is all expired
    assert len(d._blocks) == 1
    assert len(d) == 1
