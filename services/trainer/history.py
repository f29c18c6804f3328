"""Reading the history the feature store recorded (FeatureStore.ReadHistory)
as plain values for the trainer: the points, and the quality labels of the
outcome summaries the router forwarded."""

from __future__ import annotations

import grpc

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.errors import FailedPrecondition, Unavailable
from services.common.points import from_message
from services.common.telemetry import Point
from services.common.timeutil import to_seconds
from services.trainer.dataset import QualityBucket
from services.trainer.job import MAX_SYNTHETIC_POINTS, FeatureStoreSource, Source

# The same bound on memory and time as a synthetic history.
MAX_HISTORY_POINTS = MAX_SYNTHETIC_POINTS
READ_TIMEOUT_S = 300.0


def read(
    stub: feature_store_pb2_grpc.FeatureStoreStub,
    source: FeatureStoreSource,
    *,
    max_points: int = MAX_HISTORY_POINTS,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[Point]:
    """The points of the source's span. FailedPrecondition when the store
    keeps no history or holds more than max_points in the span;
    Unavailable when it cannot be reached."""
    points: list[Point] = []
    call = stub.ReadHistory(feature_store_pb2.ReadHistoryRequest(last_s=source.duration_s), timeout=timeout_s)
    try:
        for batch in call:
            points.extend(from_message(p) for p in batch.points)
            if len(points) > max_points:
                call.cancel()
                raise FailedPrecondition(
                    f"feature_store.duration_s: the feature store holds more than {max_points} points in "
                    f"{'that span' if source.duration_s else 'all'}; ask for a shorter duration_s"
                )
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
            raise FailedPrecondition(f"feature_store: {exc.details()}") from exc
        raise Unavailable(f"feature_store: cannot read its history: {exc.code().name}: {exc.details()}") from exc
    return points


def read_quality(
    stub: feature_store_pb2_grpc.FeatureStoreStub,
    source: Source,
    *,
    max_buckets: int = MAX_HISTORY_POINTS,
    timeout_s: float = READ_TIMEOUT_S,
) -> list[QualityBucket]:
    """The quality labels of the source's span: the outcome summaries that
    carry quality scores. Only the feature store's history has them; other
    sources have none. Errors as read()."""
    if not isinstance(source, FeatureStoreSource):
        return []
    buckets: list[QualityBucket] = []
    request = feature_store_pb2.ReadHistoryRequest(last_s=source.duration_s, include_outcomes=True, skip_points=True)
    call = stub.ReadHistory(request, timeout=timeout_s)
    try:
        for batch in call:
            buckets.extend(
                QualityBucket(o.backend_id, to_seconds(o.bucket_start), o.quality_count, o.quality_sum)
                for o in batch.outcomes
                if o.quality_count
            )
            if len(buckets) > max_buckets:
                call.cancel()
                raise FailedPrecondition(
                    f"feature_store.duration_s: the feature store holds more than {max_buckets} quality summaries "
                    "in that span; ask for a shorter duration_s"
                )
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
            raise FailedPrecondition(f"feature_store: {exc.details()}") from exc
        raise Unavailable(f"feature_store: cannot read its history: {exc.code().name}: {exc.details()}") from exc
    return buckets
