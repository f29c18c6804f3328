"""The real server on port 0, spoken to through the generated stubs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc, telemetry_pb2
from services.common import features
from services.common.serving import RunningServer
from services.predictor import server
from services.predictor.config import PredictorConfig
from services.predictor.loop import LoopSettings
from services.predictor.model import ModelMeta
from services.predictor.trust import TrustSettings
from tests.fakes import OPEN_ADMIN
from tests.predictor import models

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Client:
    running: RunningServer
    predictor: predictor_pb2_grpc.PredictorStub
    health: health_pb2_grpc.HealthStub

    def status(self) -> int:
        request = health_pb2.HealthCheckRequest(service=server.SERVICE_NAME)
        return int(self.health.Check(request, timeout=5).status)

    def publish(self, meta: ModelMeta, onnx_bytes: bytes, chunk_size: int = 1024) -> predictor_pb2.ModelInfo:
        requests = models.publish_requests(meta, onnx_bytes, chunk_size)
        info: predictor_pb2.ModelInfo = self.predictor.PublishModel(iter(requests), timeout=30)
        return info

    def predict(self, x: np.ndarray, schema: str = features.SCHEMA_VERSION) -> predictor_pb2.PredictResponse:
        response: predictor_pb2.PredictResponse = self.predictor.Predict(predict_request(x, schema), timeout=10)
        return response


def predict_request(x: np.ndarray, schema: str = features.SCHEMA_VERSION) -> predictor_pb2.PredictRequest:
    return predictor_pb2.PredictRequest(
        vectors=[
            telemetry_pb2.FeatureVector(backend_id=f"b{i}", schema_version=schema, values=[float(v) for v in row])
            for i, row in enumerate(x)
        ]
    )


@contextmanager
def connect(model_dir: Path, max_model_bytes: int = 1 << 20, loop: LoopSettings | None = None) -> Iterator[Client]:
    config = PredictorConfig(
        host="127.0.0.1",
        port=0,
        grace_s=0.0,
        model_dir=model_dir,
        max_model_bytes=max_model_bytes,
        admin=OPEN_ADMIN,
        loop=loop or LoopSettings(),
    )
    running = server.start(config)
    # No channel_ready_future: the port is bound when start returns, and a
    # channel that was watched for readiness takes 0.2 s to close.
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Client(running, predictor_pb2_grpc.PredictorStub(channel), health_pb2_grpc.HealthStub(channel))
    finally:
        channel.close()
        running.stop(0)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with connect(tmp_path) as c:
        yield c


def test_health_follows_the_active_model(client: Client, onnx_a: bytes) -> None:
    assert client.status() == NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        client.predict(models.inputs(1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "no active model"
    with pytest.raises(grpc.RpcError) as err:
        client.predictor.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    info = client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    assert info.active
    assert client.status() == SERVING


def test_publish_in_chunks_then_predict_a_batch(client: Client, onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a, version="v1")
    requests = models.publish_requests(meta, onnx_a, chunk_size=512)
    assert len(requests) > 3
    info = client.predictor.PublishModel(iter(requests), timeout=30)
    assert info.active
    assert info.metadata.version == "v1"
    assert info.metadata.sha256 == meta.sha256
    assert list(info.metadata.feature_names) == list(features.FEATURE_NAMES)
    assert dict(info.metadata.metrics) == {"mae_ms": 1.5, "r2": 0.9}
    assert info.metadata.trained_at.seconds == 1_700_000_000 and info.metadata.trained_at.nanos == 500_000_000
    assert not info.metadata.reference_inputs and not info.metadata.reference_outputs
    assert info.published_at.seconds > 0

    x = models.inputs(50, seed=5)
    response = client.predict(x)
    assert response.model_version == "v1"
    assert [p.backend_id for p in response.predictions] == [f"b{i}" for i in range(50)]
    np.testing.assert_array_equal([p.predicted_latency_ms for p in response.predictions], models.run_onnx(onnx_a, x))

    empty = client.predictor.Predict(predictor_pb2.PredictRequest(), timeout=5)
    assert empty.model_version == "v1" and not empty.predictions
    assert client.predictor.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5) == info


def test_without_the_learning_loop_no_model_is_proven_unless_the_gate_is_off(tmp_path: Path, onnx_a: bytes) -> None:
    for gate_on in (True, False):
        settings = LoopSettings(trust=TrustSettings(enabled=gate_on))
        with connect(tmp_path / str(gate_on), loop=settings) as client:
            client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
            response = client.predict(models.inputs(2))
            assert response.model_proven is not gate_on
            assert ("learning loop off" if gate_on else "trust gate off") in response.trust_reason


def test_predict_errors_name_the_field(client: Client, onnx_a: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    x = models.inputs(3)

    with pytest.raises(grpc.RpcError) as err:
        client.predict(x, schema="ace.features.v0")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("vectors[0].schema_version:")
    assert "'ace.features.v1'" in err.value.details() and "'ace.features.v0'" in err.value.details()

    request = predict_request(x)
    del request.vectors[1].values[5:]
    with pytest.raises(grpc.RpcError) as err:
        client.predictor.Predict(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "vectors[1].values: expected 11 values, got 5"

    request = predict_request(x)
    request.vectors[2].values[3] = float("nan")
    with pytest.raises(grpc.RpcError) as err:
        client.predictor.Predict(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("vectors[2].values[3]: must be finite")

    with pytest.raises(grpc.RpcError) as err:
        client.predict(models.inputs(10_001))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("vectors: at most 10000")

    assert len(client.predict(models.inputs(10_000)).predictions) == 10_000


def matrix_request(x: np.ndarray, schema: str = features.SCHEMA_VERSION) -> predictor_pb2.PredictRequest:
    return predictor_pb2.PredictRequest(
        matrix=predictor_pb2.FeatureMatrix(
            backend_ids=[f"b{i}" for i in range(len(x))], schema_version=schema, values=x.ravel().tolist()
        )
    )


def test_a_matrix_predicts_as_the_same_vectors_do(client: Client, onnx_a: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    x = models.inputs(40, seed=9)
    response = client.predictor.Predict(matrix_request(x), timeout=10)
    assert response.model_version == "v1" and not response.predictions
    by_vectors = [p.predicted_latency_ms for p in client.predict(x).predictions]
    assert list(response.predicted_latency_ms) == by_vectors
    np.testing.assert_array_equal(response.predicted_latency_ms, models.run_onnx(onnx_a, x))

    empty = client.predictor.Predict(matrix_request(models.inputs(0)), timeout=5)
    assert empty.model_version == "v1" and not empty.predicted_latency_ms


def test_matrix_errors_name_the_field(client: Client, onnx_a: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    x = models.inputs(3)

    def refused(request: predictor_pb2.PredictRequest) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as err:
            client.predictor.Predict(request, timeout=5)
        return err.value.code(), err.value.details()

    code, details = refused(matrix_request(x, schema="ace.features.v0"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith("matrix.schema_version:") and "'ace.features.v0'" in details

    request = matrix_request(x)
    del request.matrix.values[-1]
    assert refused(request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "matrix.values: expected 33 values (3 rows of 11 features), got 32",
    )

    request = matrix_request(x)
    request.matrix.values[11 + 4] = float("inf")
    code, details = refused(request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("matrix.values[15] (row 1): must be finite")

    request = matrix_request(x)
    request.matrix.values[0] = 1e39  # finite as a double, not as the model's float32
    code, details = refused(request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("matrix.values[0] (row 0): must be finite")

    both = matrix_request(x)
    both.vectors.extend(predict_request(x).vectors)
    assert refused(both) == (grpc.StatusCode.INVALID_ARGUMENT, "matrix: send vectors or a matrix, not both")

    code, details = refused(matrix_request(models.inputs(10_001)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("matrix.backend_ids: at most 10000 rows")


def test_malformed_publish_streams(client: Client, onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a, version="v1")
    requests = models.publish_requests(meta, onnx_a)
    cases = {
        "chunk before metadata": [requests[1], requests[0], *requests[2:]],
        "metadata: sent twice": [requests[0], requests[0], *requests[1:]],
        "metadata: missing": [],
        "part: message 1 carries neither": [requests[0], predictor_pb2.PublishModelRequest()],
        "size_bytes: metadata says": requests[:-1],
    }
    for reason, stream in cases.items():
        with pytest.raises(grpc.RpcError) as err:
            client.predictor.PublishModel(iter(stream), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, reason
        assert err.value.details().startswith(reason), err.value.details()
    assert client.predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models == []
    assert client.status() == NOT_SERVING


def test_oversized_model_refused(tmp_path: Path, onnx_a: bytes) -> None:
    with connect(tmp_path, max_model_bytes=1000) as client:
        with pytest.raises(grpc.RpcError) as err:
            client.publish(models.make_meta(onnx_a), onnx_a)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(f"size_bytes: {len(onnx_a)} exceeds this predictor's limit of 1000 bytes")


def test_corrupted_model_leaves_active_unchanged(client: Client, onnx_a: bytes, onnx_b: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    corrupted = bytearray(onnx_b)
    corrupted[len(corrupted) // 2] ^= 0xFF
    meta = models.make_meta(onnx_b, version="v2")
    with pytest.raises(grpc.RpcError) as err:
        client.publish(meta, bytes(corrupted))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("sha256:")

    # Checksum of the corrupted bytes, so the model itself has to be judged.
    garbage = b"\x00\x01 not onnx" * 100
    with pytest.raises(grpc.RpcError) as err:
        client.publish(models.claim(meta, garbage), garbage)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("model: onnxruntime cannot load it")

    narrow = models.onnx_model(width=5)
    with pytest.raises(grpc.RpcError) as err:
        client.publish(models.claim(meta, narrow), narrow)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("model: input 'features' must have shape [?, 11]")

    active = client.predictor.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5)
    assert active.metadata.version == "v1"
    assert client.predict(models.inputs(2)).model_version == "v1"
    listed = client.predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=5)
    assert [m.metadata.version for m in listed.models] == ["v1"]


def test_already_exists(client: Client, onnx_a: bytes, onnx_b: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    with pytest.raises(grpc.RpcError) as err:
        client.publish(models.make_meta(onnx_b, version="v1"), onnx_b)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_rollback_and_list(client: Client, onnx_a: bytes, onnx_b: bytes) -> None:
    rollback = client.predictor.Rollback
    with pytest.raises(grpc.RpcError) as err:
        rollback(predictor_pb2.RollbackRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    client.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
    x = models.inputs(4, seed=9)
    assert client.predict(x).model_version == "v2"

    with pytest.raises(grpc.RpcError) as err:
        rollback(predictor_pb2.RollbackRequest(to_version="v7"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    info = rollback(predictor_pb2.RollbackRequest(), timeout=5)
    assert info.metadata.version == "v1" and info.active
    response = client.predict(x)
    assert response.model_version == "v1"
    np.testing.assert_array_equal([p.predicted_latency_ms for p in response.predictions], models.run_onnx(onnx_a, x))

    listed = client.predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models
    assert [(m.metadata.version, m.active) for m in listed] == [("v2", False), ("v1", True)]

    assert rollback(predictor_pb2.RollbackRequest(to_version="v2"), timeout=5).metadata.version == "v2"
    assert client.predict(x).model_version == "v2"


def test_restart_restores_and_serves_at_once(tmp_path: Path, onnx_a: bytes) -> None:
    x = models.inputs(6, seed=2)
    with connect(tmp_path) as first:
        first.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
        before = first.predict(x)
    with connect(tmp_path) as second:
        assert second.status() == SERVING
        assert second.predict(x) == before


def test_swap_under_concurrent_predicts(client: Client, onnx_a: bytes, onnx_b: bytes) -> None:
    client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    x = models.inputs(32, seed=13)
    expected = {"v1": list(models.run_onnx(onnx_a, x)), "v2": list(models.run_onnx(onnx_b, x))}
    assert expected["v1"] != expected["v2"]
    request = predict_request(x)
    threads, calls = 4, 150
    start = threading.Barrier(threads + 1)

    def hammer() -> list[predictor_pb2.PredictResponse]:
        start.wait(timeout=10)
        return [client.predictor.Predict(request, timeout=10) for _ in range(calls)]

    with futures.ThreadPoolExecutor(threads) as pool:
        running = [pool.submit(hammer) for _ in range(threads)]
        start.wait(timeout=10)
        client.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
        client.predictor.Rollback(predictor_pb2.RollbackRequest(), timeout=10)
        client.predictor.Rollback(predictor_pb2.RollbackRequest(to_version="v2"), timeout=10)
        responses = [r for f in running for r in f.result(timeout=60)]

    assert len(responses) == threads * calls
    for response in responses:
        # Every response comes from one version, all of its predictions too.
        assert response.model_version in expected
        assert [p.predicted_latency_ms for p in response.predictions] == expected[response.model_version]
    assert client.predict(x).model_version == "v2"


def test_the_history_a_version_learnt_from_survives_a_restart(tmp_path: Path, onnx_a: bytes) -> None:
    fleet = models.make_meta(
        onnx_a, version="v1", history_source="HISTORY_SOURCE_FLEET", history_start_at=1000.0, history_end_at=8200.0
    )
    unknown = models.metadata_proto(models.make_meta(onnx_a, version="v2", stage_only=True))
    unknown.history_source = 99  # type: ignore[assignment]  # a newer trainer's source
    with connect(tmp_path) as first:
        first.publish(fleet, onnx_a)
        first.predictor.PublishModel(
            iter(
                [predictor_pb2.PublishModelRequest(metadata=unknown), predictor_pb2.PublishModelRequest(chunk=onnx_a)]
            ),
            timeout=30,
        )
    with connect(tmp_path) as second:
        listed = {
            m.metadata.version: m.metadata
            for m in second.predictor.ListModels(predictor_pb2.ListModelsRequest()).models
        }
    assert listed["v1"].history_source == predictor_pb2.HISTORY_SOURCE_FLEET
    assert (listed["v1"].history_start_at.seconds, listed["v1"].history_end_at.seconds) == (1000, 8200)
    assert listed["v2"].history_source == predictor_pb2.HISTORY_SOURCE_UNSPECIFIED
    assert not listed["v2"].HasField("history_end_at")
