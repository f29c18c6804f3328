import pytest

from services.common.outcome_summary import Summary
from services.router.outcomes import DecisionLog, Recorded, Status
from services.router.summaries import Report, Summaries, report_all


def test_outcomes_add_up_per_backend_and_bucket():
    s = Summaries(bucket_s=10)
    s.add(Recorded("a", 1003.0, 120.0, None))
    s.add(Recorded("a", 1009.9, 300.0, 0.5))
    s.add(Recorded("a", 1010.0, None, 1.0))  # the next bucket
    s.add(Recorded("b", 1005.0, None, 0.25))
    assert s.take(10) == [
        Summary("a", 1000.0, 10, quality_count=1, quality_sum=0.5, latency_count=2, latency_sum_ms=420.0,
                latency_max_ms=300.0),
        Summary("a", 1010.0, 10, quality_count=1, quality_sum=1.0),
        Summary("b", 1000.0, 10, quality_count=1, quality_sum=0.25),
    ]  # fmt: skip
    assert s.take(10) == []


def test_take_hands_out_the_oldest_first_within_the_limit():
    s = Summaries(bucket_s=10)
    for t in (1000.0, 1010.0, 1020.0):
        s.add(Recorded("a", t, 1.0, None))
    assert [x.bucket_start for x in s.take(2)] == [1000.0, 1010.0]
    assert [x.bucket_start for x in s.take(2)] == [1020.0]


def test_decisions_without_telemetry_are_counted_not_sent():
    s = Summaries()
    s.add(Recorded("a", 0.0, 120.0, None))
    assert (s.take(10), s.unplaced) == ([], 1)


def test_pending_buckets_are_bounded_oldest_dropped():
    s = Summaries(bucket_s=10, max_pending=2)
    for t in (1000.0, 1010.0, 1020.0):
        s.add(Recorded("a", t, 1.0, None))
    assert s.dropped == 1
    assert [x.bucket_start for x in s.take(10)] == [1010.0, 1020.0]


@pytest.mark.parametrize(("bucket_s", "max_pending"), [(0.0, 1), (float("nan"), 1), (10.0, 0)])
def test_bad_settings_are_refused(bucket_s, max_pending):
    with pytest.raises(ValueError):
        Summaries(bucket_s=bucket_s, max_pending=max_pending)


def test_report_all_answers_each_report_and_sums_only_what_was_accepted():
    log = DecisionLog(instance="r1")
    summaries = Summaries(bucket_s=10)
    decision_id = log.record("a", 120.0, "v1", as_of=1000.0)
    receipts = report_all(
        log,
        summaries,
        [
            Report(decision_id, latency_ms=80.0),
            Report(decision_id, latency_ms=80.0),  # a retry
            Report("r1-77", quality=0.5),  # never issued
            Report(decision_id, quality=0.9),  # later, the quality
        ],
    )
    assert [r.status for r in receipts] == [Status.ACCEPTED, Status.DUPLICATE, Status.REJECTED, Status.ACCEPTED]
    assert summaries.take(10) == [
        Summary("a", 1000.0, 10, quality_count=1, quality_sum=0.9, latency_count=1, latency_sum_ms=80.0,
                latency_max_ms=80.0)
    ]  # fmt: skip
