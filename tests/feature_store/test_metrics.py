"""The feature store's metrics, read over HTTP from a real server on port 0."""

from __future__ import annotations

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, telemetry_pb2
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.metrics import reason_label
from services.feature_store.server import start
from tests import scrape


def point(backend_id: str, t: float, latency_ms: float = 100.0) -> telemetry_pb2.TelemetryPoint:
    p = telemetry_pb2.TelemetryPoint(backend_id=backend_id, load=0.5, latency_ms=latency_ms, error_rate=0.0)
    p.observed_at.FromMilliseconds(int(t * 1000))
    return p


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("observed_at: older than the window (...)", "too_old"),
        ("backend_id: backend cap of 2 reached", "backend_cap"),
        ("backend_id: must not be empty", "backend_id"),
        ("latency_ms: must be finite and >= 0, got nan", "latency_ms"),
        ("something new: a rule added later", "other"),
    ],
)
def test_a_rejection_is_labelled_by_its_field_or_what_refused_it(reason, label):
    assert reason_label(reason) == label


def test_points_are_counted_by_outcome_and_the_windows_are_read_at_scrape_time():
    running = start(
        FeatureStoreConfig(host="127.0.0.1", port=0, metrics_port=0, max_backends=2, window_s=60, window_max_points=10)
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = feature_store_pb2_grpc.FeatureStoreStub(channel)
            batch = [point("a", 1000 + i) for i in range(5)] + [point("b", 1000)]
            batch += [point("a", 100), point("", 1000), point("c", 1000), point("b", 1001, latency_ms=-1)]
            answer = stub.Ingest(feature_store_pb2.IngestRequest(points=batch), timeout=5)
            assert answer.accepted == 6 and len(answer.rejected) == 4
            watch = stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest(), timeout=10)
            next(watch)  # the stream is open once its first answer arrives
            found = scrape.samples(running.metrics_port or 0)
            watch.cancel()
        assert scrape.value(found, "ace_feature_store_points_accepted_total") == 6
        for reason in ("too_old", "backend_id", "backend_cap", "latency_ms"):
            assert scrape.value(found, "ace_feature_store_points_rejected_total", reason=reason) == 1, reason
        assert scrape.value(found, "ace_feature_store_points_rejected_total", reason="load") == 0
        assert scrape.value(found, "ace_feature_store_backends") == 2
        assert scrape.value(found, "ace_feature_store_window_points") == 6
        assert scrape.value(found, "ace_feature_store_window_fill_ratio", backend_id="a") == 0.5
        assert scrape.value(found, "ace_feature_store_window_fill_ratio", backend_id="b") == 0.1
        assert scrape.value(found, "ace_feature_store_watch_subscribers") == 1
        assert (scrape.value(found, "ace_feature_store_last_accepted_timestamp_seconds") or 0) > 0
    finally:
        running.stop(0)
