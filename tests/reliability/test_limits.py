"""The bounds every server keeps: message size, backends tracked, watch
streams. Real servers on port 0."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    telemetry_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common.serving import RunningServer
from services.common.timeutil import to_timestamp
from services.feature_store import server as fs_server
from services.feature_store.config import FeatureStoreConfig
from services.predictor import server as pr_server
from services.predictor.config import PredictorConfig
from services.router import config as rt_config
from services.router import server as rt_server
from services.trainer import server as tr_server
from services.trainer.config import TrainerConfig
from tests.fakes import ADMIN
from tests.ports import free_port

MIB = 1024 * 1024


def point(backend_id: str, t: float = 1000.0) -> telemetry_pb2.TelemetryPoint:
    return telemetry_pb2.TelemetryPoint(
        backend_id=backend_id, observed_at=to_timestamp(t), load=1.0, latency_ms=100.0, error_rate=0.0
    )


@pytest.fixture
def feature_store() -> Iterator[feature_store_pb2_grpc.FeatureStoreStub]:
    running = fs_server.start(FeatureStoreConfig(host="127.0.0.1", port=0, max_backends=2))
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield feature_store_pb2_grpc.FeatureStoreStub(channel)
    running.stop(0)


def start_router(max_streams: int = 2) -> RunningServer:
    # Dependencies that are not there: the router still serves.
    return rt_server.start(
        rt_config.load(
            [
                *("--host", "127.0.0.1", "--port", "0", "--max-streams", str(max_streams)),
                *("--feature-store-addr", f"127.0.0.1:{free_port()}", "--predictor-addr", f"127.0.0.1:{free_port()}"),
            ]
        )
    )


def test_a_request_that_only_adds_backends_past_the_cap_is_resource_exhausted(feature_store):
    stored = feature_store.Ingest(feature_store_pb2.IngestRequest(points=[point("a"), point("b")]), timeout=5)
    assert stored.accepted == 2
    with pytest.raises(grpc.RpcError) as caught:
        feature_store.Ingest(feature_store_pb2.IngestRequest(points=[point("c"), point("d")]), timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "backend cap of 2" in (caught.value.details() or "")
    # A mixed batch keeps the points of known backends and names the rest.
    mixed = feature_store.Ingest(feature_store_pb2.IngestRequest(points=[point("c"), point("a", 1001)]), timeout=5)
    assert mixed.accepted == 1
    assert [(r.index, r.reason) for r in mixed.rejected] == [(0, "backend_id: backend cap of 2 reached")]


def test_a_message_over_the_feature_stores_cap_is_refused_and_the_store_serves_on(feature_store):
    huge = feature_store_pb2.IngestRequest(points=[point("x" * (5 * MIB))])
    with pytest.raises(grpc.RpcError) as caught:
        feature_store.Ingest(huge, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert feature_store.Ingest(feature_store_pb2.IngestRequest(points=[point("a")]), timeout=5).accepted == 1


@pytest.mark.parametrize(
    ("service", "cap_bytes"),
    [
        ("predictor", pr_server.MAX_RECEIVE_BYTES),
        ("router", rt_server.MAX_RECEIVE_BYTES),
        ("trainer", tr_server.MAX_RECEIVE_BYTES),
    ],
)
def test_every_server_refuses_a_message_over_its_cap(tmp_path, service: str, cap_bytes: int):
    if service == "predictor":
        running = pr_server.start(PredictorConfig(host="127.0.0.1", port=0, model_dir=tmp_path, admin=ADMIN))
    elif service == "router":
        running = start_router()
    else:
        running = tr_server.start(TrainerConfig(host="127.0.0.1", port=0, admin=ADMIN))
    big = "x" * (cap_bytes + 1024)
    calls = {
        "predictor": lambda ch: predictor_pb2_grpc.PredictorStub(ch).Predict(
            predictor_pb2.PredictRequest(vectors=[telemetry_pb2.FeatureVector(backend_id=big)]), timeout=10
        ),
        "router": lambda ch: router_pb2_grpc.RouterStub(ch).Decide(
            router_pb2.DecideRequest(request_id=big), timeout=10
        ),
        "trainer": lambda ch: trainer_pb2_grpc.TrainerStub(ch).GetStatus(trainer_pb2.GetStatusRequest(), timeout=10),
    }
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            if service == "trainer":
                # GetStatusRequest has no field to fill: send raw bytes of an
                # unknown field instead, which the server must still read.
                raw = channel.unary_unary("/ace.v1.Trainer/GetStatus")
                with pytest.raises(grpc.RpcError) as caught:
                    raw(b"\x0a" + _varint(len(big)) + big.encode(), timeout=10)
            else:
                with pytest.raises(grpc.RpcError) as caught:
                    calls[service](channel)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # The server is still there.
            health = channel.unary_unary("/grpc.health.v1.Health/Check")
            assert health(b"", timeout=5) == b"\x08\x01"  # status: SERVING
    finally:
        running.stop(0)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_watch_streams_past_the_routers_cap_are_resource_exhausted_and_decide_answers():
    running = start_router(max_streams=2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            watches = [stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest(), timeout=30) for _ in range(2)]
            for watch in watches:
                next(watch)  # the first message: the stream holds its slot
            third = stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest(), timeout=30)
            with pytest.raises(grpc.RpcError) as caught:
                next(third)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            decision = stub.Decide(router_pb2.DecideRequest(request_id="r", candidates=["a", "b"]), timeout=5)
            assert decision.backend_id in ("a", "b")
            # A slot freed by a cancelled watch is taken by the next one; the
            # server notices the cancel at its next poll, so retry a while.
            watches[0].cancel()
            deadline = time.monotonic() + 10
            while True:
                retry = stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest(), timeout=30)
                try:
                    next(retry)
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert time.monotonic() < deadline, "the cancelled watch never gave its slot back"
                    time.sleep(0.05)
            retry.cancel()
            watches[1].cancel()
    finally:
        running.stop(0)
