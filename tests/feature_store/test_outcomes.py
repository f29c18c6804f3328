"""Outcome summaries: the record format, the rules, the batch ids, and
IngestOutcomes + ReadHistory on a real server on port 0."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.outcome_summary import Summary
from services.common.points import to_message
from services.common.telemetry import Point
from services.common.timeutil import to_seconds, to_timestamp
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.history import Retention
from services.feature_store.outcomes import OutcomeLog, decode, encode, problem
from services.feature_store.server import start

T0 = 1_767_225_600.0
BIG = Retention(max_bytes=1 << 30, max_age_s=1e9)


def summary(backend: str = "a", t: float = T0, **kw) -> Summary:
    values = dict(bucket_s=10.0, quality_count=2, quality_sum=1.5, latency_count=2, latency_sum_ms=300.0,
                  latency_max_ms=200.0)  # fmt: skip
    values.update(kw)
    return Summary(backend, t, **values)  # type: ignore[arg-type]


def test_records_round_trip_and_a_torn_tail_is_left_out():
    summaries = [summary("a"), summary("gpu-b", T0 + 10, quality_count=0, quality_sum=0.0)]
    raw = encode(summaries)
    assert decode(raw) == (summaries, len(raw))
    assert decode(raw[:-3]) == (summaries[:1], len(encode(summaries[:1])))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (summary(""), "backend_id"),
        (summary(t=0.0), "bucket_start"),
        (summary(t=math.nan), "bucket_start"),
        (summary(t=3.3e-317), "bucket_start"),  # found by make fuzz: 0 once sent as a Timestamp
        (summary(bucket_s=0.0), "bucket_s"),
        (summary(bucket_s=7200.0), "bucket_s"),
        (summary(quality_count=0, quality_sum=0.0, latency_count=0, latency_sum_ms=0.0, latency_max_ms=0.0),
         "quality_count"),
        (summary(quality_sum=2.5), "quality_sum"),
        (summary(quality_sum=math.nan), "quality_sum"),
        (summary(latency_max_ms=math.inf), "latency_max_ms"),
        (summary(latency_count=0, latency_sum_ms=0.0), "latency_max_ms"),
        (summary(latency_sum_ms=401.0), "latency_sum_ms"),
    ],
)  # fmt: skip
def test_summaries_that_break_a_rule_are_named_by_field(bad, field):
    why = problem(bad)
    assert why is not None and why.startswith(f"{field}:")
    # Damaged bytes that decode to such a record end the decoding there.
    assert decode(encode([summary(), bad])) == ([summary()], len(encode([summary()])))


def test_equal_latencies_summed_one_by_one_are_taken_despite_rounding():
    # How the router sums them: six times 0.7 is 4.2, above 0.7 * 6.
    total = 0.0
    for _ in range(6):
        total += 0.7
    assert total > 0.7 * 6
    s = summary(quality_count=0, quality_sum=0.0, latency_count=6, latency_sum_ms=total, latency_max_ms=0.7)
    assert problem(s) is None


def test_a_batch_id_seen_before_stores_nothing(tmp_path: Path, request: pytest.FixtureRequest):
    log = OutcomeLog(tmp_path, BIG)
    request.addfinalizer(log.close)
    first = log.ingest("r1-1", [summary(), summary(quality_sum=9.0)])
    assert (first.accepted, [r.index for r in first.rejected], first.duplicate) == (1, [1], False)
    again = log.ingest("r1-1", [summary()])
    assert (again.accepted, again.duplicate) == (0, True)
    assert [s for batch in log.read(0, math.inf) for s in batch] == [summary()]


def serve(history_dir: Path | None):
    running = start(FeatureStoreConfig(host="127.0.0.1", port=0, history_dir=history_dir))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, feature_store_pb2_grpc.FeatureStoreStub(channel)


def message(backend: str, t: float, quality_sum: float) -> feature_store_pb2.OutcomeSummary:
    return feature_store_pb2.OutcomeSummary(
        backend_id=backend, bucket_start=to_timestamp(t), bucket_s=10.0, quality_count=1, quality_sum=quality_sum
    )


def test_ingested_outcomes_come_back_through_read_history(tmp_path: Path):
    running, channel, stub = serve(tmp_path)
    try:
        points = [Point("a", T0 + 10 * i, 20.0, 100.0, 0.0) for i in range(6)]
        stub.Ingest(feature_store_pb2.IngestRequest(points=[to_message(p) for p in points]), timeout=5)
        response = stub.IngestOutcomes(
            feature_store_pb2.IngestOutcomesRequest(
                batch_id="r1-1",
                summaries=[
                    message("a", T0, 0.9),
                    message("b", T0 + 20, 0.1),
                    feature_store_pb2.OutcomeSummary(backend_id="a", bucket_s=10, quality_count=1),  # no time
                ],
            ),
            timeout=5,
        )
        assert response.accepted == 2 and not response.duplicate
        assert [(r.index, r.reason.split(":")[0]) for r in response.rejected] == [(2, "bucket_start")]

        def read(**kw) -> tuple[int, list[tuple[str, float, float]]]:
            batches = list(stub.ReadHistory(feature_store_pb2.ReadHistoryRequest(**kw), timeout=5))
            got = [(o.backend_id, to_seconds(o.bucket_start), o.quality_sum) for b in batches for o in b.outcomes]
            assert all(not (b.points and b.outcomes) for b in batches)
            return sum(len(b.points) for b in batches), got

        assert read() == (6, [])  # outcomes only when asked for
        assert read(include_outcomes=True) == (6, [("a", T0, 0.9), ("b", T0 + 20, 0.1)])
        assert read(include_outcomes=True, skip_points=True, backend_ids=["b"]) == (0, [("b", T0 + 20, 0.1)])
        assert read(include_outcomes=True, skip_points=True, last_s=30) == (0, [("b", T0 + 20, 0.1)])
        resent = stub.IngestOutcomes(
            feature_store_pb2.IngestOutcomesRequest(batch_id="r1-1", summaries=[message("a", T0, 0.9)]), timeout=5
        )
        assert (resent.accepted, resent.duplicate) == (0, True)
    finally:
        channel.close()
        running.stop(0)
    # A restart on the same directory keeps them.
    running, channel, stub = serve(tmp_path)
    try:
        batches = stub.ReadHistory(
            feature_store_pb2.ReadHistoryRequest(include_outcomes=True, skip_points=True), timeout=5
        )
        assert sum(len(b.outcomes) for b in batches) == 2
    finally:
        channel.close()
        running.stop(0)


def test_without_history_ingest_outcomes_is_failed_precondition():
    running, channel, stub = serve(None)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.IngestOutcomes(
                feature_store_pb2.IngestOutcomesRequest(batch_id="x", summaries=[message("a", T0, 1.0)]), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        channel.close()
        running.stop(0)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (feature_store_pb2.IngestOutcomesRequest(batch_id=""), "batch_id"),
        (feature_store_pb2.IngestOutcomesRequest(batch_id="x", summaries=[message("a", T0, 1.0)] * 10_001),
         "summaries"),
    ],
)  # fmt: skip
def test_bad_batches_are_invalid_argument(tmp_path: Path, request_, field):
    running, channel, stub = serve(tmp_path)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.IngestOutcomes(request_, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(f"{field}:")
    finally:
        channel.close()
        running.stop(0)
