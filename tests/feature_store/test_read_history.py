"""ReadHistory on a real server on port 0: what Ingest accepted comes back
by event-time range, survives a restart on the same directory, and bad
requests name their field."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.points import from_message, to_message
from services.common.telemetry import Point
from services.common.timeutil import to_timestamp
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.server import start

T0 = 1_767_225_600.0


def history(backend: str, n: int) -> list[Point]:
    return [Point(backend, T0 + 10 * i, 20.0 + i, 100.0 + i, 0.0) for i in range(n)]


def ingest(stub: feature_store_pb2_grpc.FeatureStoreStub, points: list[Point]) -> None:
    response = stub.Ingest(feature_store_pb2.IngestRequest(points=[to_message(p) for p in points]), timeout=5)
    assert response.accepted == len(points) and not response.rejected


def read(stub: feature_store_pb2_grpc.FeatureStoreStub, **kw) -> list[Point]:
    request = feature_store_pb2.ReadHistoryRequest(**kw)
    return [from_message(p) for batch in stub.ReadHistory(request, timeout=10) for p in batch.points]


def serve(history_dir: Path | None):
    running = start(FeatureStoreConfig(host="127.0.0.1", port=0, history_dir=history_dir))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, feature_store_pb2_grpc.FeatureStoreStub(channel)


def test_accepted_points_come_back_by_range_and_after_a_restart(tmp_path: Path):
    running, channel, stub = serve(tmp_path)
    try:
        ingest(stub, history("a", 60) + history("b", 60))
        # Rejected points are not history.
        bad = stub.Ingest(feature_store_pb2.IngestRequest(points=[to_message(Point("a", T0, -1.0, 1.0, 0.0))]))
        assert bad.rejected
        assert read(stub) == history("a", 60) + history("b", 60)
        assert read(stub, last_s=100, backend_ids=["b"]) == history("b", 60)[-11:]
        assert read(stub, start_time=to_timestamp(T0 + 100), end_time=to_timestamp(T0 + 130)) == (
            history("a", 60)[10:13] + history("b", 60)[10:13]
        )
    finally:
        channel.close()
        running.stop(0)
    running, channel, stub = serve(tmp_path)
    try:
        assert read(stub, backend_ids=["a"]) == history("a", 60)
    finally:
        channel.close()
        running.stop(0)


def test_a_long_history_arrives_in_batches(tmp_path: Path):
    running, channel, stub = serve(tmp_path)
    try:
        for start in range(0, 10_000, 2_500):
            ingest(stub, history("a", 10_000)[start : start + 2_500])
        sizes = [len(b.points) for b in stub.ReadHistory(feature_store_pb2.ReadHistoryRequest(), timeout=10)]
        assert sizes == [4096, 4096, 1808]
    finally:
        channel.close()
        running.stop(0)


def test_without_a_history_dir_read_history_is_a_failed_precondition():
    running, channel, stub = serve(None)
    try:
        with pytest.raises(grpc.RpcError) as err:
            read(stub)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--history-dir" in err.value.details()
    finally:
        channel.close()
        running.stop(0)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"start_time": to_timestamp(T0 + 10), "end_time": to_timestamp(T0)}, "end_time"),
        ({"last_s": 60, "start_time": to_timestamp(T0)}, "last_s"),
        ({"last_s": -1}, "last_s"),
    ],
)
def test_a_bad_range_is_invalid_and_named(tmp_path: Path, request_fields, field):
    running, channel, stub = serve(tmp_path)
    try:
        with pytest.raises(grpc.RpcError) as err:
            read(stub, **request_fields)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(f"{field}:")
    finally:
        channel.close()
        running.stop(0)
