"""The real server on port 0, through the generated stubs."""

from __future__ import annotations

import math
import queue
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, telemetry_pb2
from services.common.changes import Subscription
from services.common.features import FEATURE_NAMES, SCHEMA_VERSION
from services.common.timeutil import to_seconds, to_timestamp
from services.common.window import WindowLimits
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.server import SERVICE_NAME, start
from services.feature_store.store import Store
from tests.feature_store.conftest import Served

T0 = 1_767_225_600.0


def tp(backend_id: str = "a", t: float | None = T0, latency_ms: float = 50.0) -> telemetry_pb2.TelemetryPoint:
    point = telemetry_pb2.TelemetryPoint(backend_id=backend_id, load=10.0, latency_ms=latency_ms, error_rate=0.01)
    if t is not None:
        point.observed_at.CopyFrom(to_timestamp(t))
    return point


def test_health_is_serving_for_the_service_and_the_server(served: Served):
    health = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", SERVICE_NAME):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_ingest_keeps_the_valid_points_and_rejects_the_rest_by_index(served: Served):
    request = feature_store_pb2.IngestRequest(
        points=[tp("a", T0), tp("b", None), tp("a", T0 + 10), tp("a", T0 + 20, latency_ms=math.nan), tp("", T0)]
    )
    response = served.stub.Ingest(request, timeout=5)
    assert response.accepted == 2
    assert [(r.index, r.reason) for r in response.rejected] == [
        (1, "observed_at: required"),
        (3, "latency_ms: must be finite and >= 0, got nan"),
        (4, "backend_id: must not be empty"),
    ]
    features = served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=5)
    assert [(v.backend_id, v.points_in_window) for v in features.vectors] == [("a", 2)]


def test_a_timestamp_beyond_the_calendar_is_rejected_and_reads_keep_working(served: Served):
    far = tp("a", T0)
    far.observed_at.seconds = 2**63 - 1
    response = served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("a", T0), far]), timeout=5)
    assert [r.index for r in response.rejected] == [1]
    assert response.rejected[0].reason.startswith("observed_at:")
    (vector,) = served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=5).vectors
    assert to_seconds(vector.as_of) == T0


def test_an_empty_ingest_accepts_nothing(served: Served):
    response = served.stub.Ingest(feature_store_pb2.IngestRequest(), timeout=5)
    assert response.accepted == 0
    assert list(response.rejected) == []


def test_ingest_over_the_point_cap_is_invalid_argument_and_stores_nothing(served: Served):
    request = feature_store_pb2.IngestRequest(points=[tp("a", T0 + i) for i in range(51)])
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.Ingest(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("points: at most 50 per request, got 51")
    assert list(served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=5).vectors) == []


def test_ingest_stream_counts_indexes_across_the_stream_and_has_no_length_cap(served: Served):
    points = [tp("s", T0 + i) for i in range(120)]  # more than max_points_per_request
    points[7] = tp("s", None)
    points[100] = tp("s", T0 + 100, latency_ms=-3.0)
    response = served.stub.IngestStream(iter(points), timeout=10)
    assert response.accepted == 118
    assert [r.index for r in response.rejected] == [7, 100]
    assert response.rejected[1].reason.startswith("latency_ms:")
    (vector,) = served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=["s"]), timeout=5).vectors
    assert vector.points_in_window == 118
    assert to_seconds(vector.as_of) == T0 + 119


def test_ingest_stream_with_too_many_rejections_is_invalid_argument(served: Served):
    points = [tp("s", T0)] + [tp("s", None) for _ in range(60)]
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.IngestStream(iter(points), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("points: more than 50 points of the stream rejected")


def test_get_features_returns_named_or_all_vectors_sorted_with_the_schema(served: Served):
    served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("c"), tp("a"), tp("b")]), timeout=5)
    every = served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=5)
    assert list(every.feature_names) == list(FEATURE_NAMES)
    assert every.schema_version == SCHEMA_VERSION
    assert [v.backend_id for v in every.vectors] == ["a", "b", "c"]
    for v in every.vectors:
        assert v.schema_version == SCHEMA_VERSION
        assert len(v.values) == len(FEATURE_NAMES)
        assert all(math.isfinite(x) for x in v.values)
        assert to_seconds(v.as_of) == T0
        assert v.points_in_window == 1
    named = served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=["c", "a"]), timeout=5)
    assert [v.backend_id for v in named.vectors] == ["a", "c"]


def test_get_features_of_an_unknown_backend_is_not_found(served: Served):
    served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("a")]), timeout=5)
    with pytest.raises(grpc.RpcError) as caught:
        served.stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=["a", "ghost"]), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost" in caught.value.details()


def test_watch_sends_a_snapshot_then_the_backends_that_changed(served: Served):
    call = served.stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest(), timeout=30)
    snapshot = next(call)
    assert list(snapshot.vectors) == []
    assert list(snapshot.feature_names) == list(FEATURE_NAMES)

    served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("b", T0), tp("a", T0)]), timeout=5)
    seen: dict[str, telemetry_pb2.FeatureVector] = {}
    while set(seen) != {"a", "b"}:
        update = next(call)
        assert [v.backend_id for v in update.vectors] == sorted(v.backend_id for v in update.vectors)
        seen.update({v.backend_id: v for v in update.vectors})

    served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("b", T0 + 10, latency_ms=75.0)]), timeout=5)
    update = next(call)
    assert [v.backend_id for v in update.vectors] == ["b"]
    assert update.vectors[0].points_in_window == 2
    assert update.vectors[0].values[FEATURE_NAMES.index("latency_ms")] == 75.0
    call.cancel()


def test_a_watch_opened_later_starts_with_every_known_backend(served: Served):
    served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp("y"), tp("x")]), timeout=5)
    call = served.stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest(), timeout=30)
    assert [v.backend_id for v in next(call).vectors] == ["x", "y"]
    call.cancel()


def test_streams_beyond_the_cap_are_resource_exhausted(served: Served):
    calls = [served.stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest(), timeout=30) for _ in range(4)]
    for call in calls:
        next(call)  # each holds its slot once its snapshot has arrived
    extra = served.stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest(), timeout=30)
    with pytest.raises(grpc.RpcError) as caught:
        next(extra)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Unary calls still have threads of their own.
    assert served.stub.Ingest(feature_store_pb2.IngestRequest(points=[tp()]), timeout=5).accepted == 1
    for call in calls:
        call.cancel()


class RecordingStore(Store):
    """Hands the test every subscription the servicer opens."""

    def __init__(self) -> None:
        super().__init__(WindowLimits(), max_backends=100)
        self.opened: queue.Queue[Subscription] = queue.Queue()

    def subscribe(self) -> Subscription:
        subscription = super().subscribe()
        self.opened.put(subscription)
        return subscription


def test_cancelling_a_watch_ends_it_on_the_server():
    store = RecordingStore()
    running = start(FeatureStoreConfig(host="localhost", port=0), store)
    with grpc.insecure_channel(f"localhost:{running.port}") as channel:
        call = feature_store_pb2_grpc.FeatureStoreStub(channel).WatchFeatures(
            feature_store_pb2.WatchFeaturesRequest(), timeout=30
        )
        next(call)
        subscription = store.opened.get(timeout=10)
        call.cancel()
        # Nothing is ingested, so the wait can only end early by the
        # servicer closing the subscription (None); a time-out gives set().
        assert subscription.wait(10) is None
        with pytest.raises(grpc.RpcError) as caught:
            next(call)
        assert caught.value.code() == grpc.StatusCode.CANCELLED
    running.stop(0)


def test_stopping_the_server_ends_watches_at_once_with_unavailable():
    running = start(FeatureStoreConfig(host="localhost", port=0))
    with grpc.insecure_channel(f"localhost:{running.port}") as channel:
        call = feature_store_pb2_grpc.FeatureStoreStub(channel).WatchFeatures(
            feature_store_pb2.WatchFeaturesRequest(), timeout=30
        )
        next(call)
        began = time.monotonic()
        running.stop(20.0)  # a watch holding the grace period would take all of it
        assert time.monotonic() - began < 10.0
        with pytest.raises(grpc.RpcError) as caught:
            next(call)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
