"""Admin calls need the bearer token; data calls do not. Real servers on
port 0, spoken to through the generated stubs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from ace.v1 import predictor_pb2, predictor_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.common import admin
from services.common.admin import AdminAuth
from services.common.config import ConfigError
from services.predictor import config as pr_config
from services.predictor import server as pr_server
from services.trainer import config as tr_config
from services.trainer import server as tr_server
from tests.fakes import ADMIN, ADMIN_CALL
from tests.predictor import models
from tests.predictor.test_server import predict_request

WRONG_CALL = admin.bearer("not-the-admin-token-0123456789")


@contextmanager
def predictor(tmp_path: Path, auth: AdminAuth) -> Iterator[predictor_pb2_grpc.PredictorStub]:
    running = pr_server.start(pr_config.PredictorConfig(host="127.0.0.1", port=0, model_dir=tmp_path, admin=auth))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield predictor_pb2_grpc.PredictorStub(channel)
    finally:
        channel.close()
        running.stop(0)


def publish(stub: predictor_pb2_grpc.PredictorStub, onnx: bytes, version: str, call: admin.Metadata) -> None:
    requests = models.publish_requests(models.make_meta(onnx, version=version), onnx, 1024)
    stub.PublishModel(iter(requests), timeout=30, metadata=call)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()


def test_a_publish_without_the_token_is_refused_and_stores_nothing(tmp_path: Path, onnx_a: bytes):
    with predictor(tmp_path, ADMIN) as stub:
        assert code_of(lambda: publish(stub, onnx_a, "v1", ())) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: publish(stub, onnx_a, "v1", WRONG_CALL)) == grpc.StatusCode.UNAUTHENTICATED
        malformed = (("authorization", "Basic dXNlcjpwYXNz"),)
        assert code_of(lambda: publish(stub, onnx_a, "v1", malformed)) == grpc.StatusCode.UNAUTHENTICATED
        assert list(stub.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models) == []


def test_a_publish_with_the_token_is_accepted_and_served(tmp_path: Path, onnx_a: bytes):
    with predictor(tmp_path, ADMIN) as stub:
        publish(stub, onnx_a, "v1", ADMIN_CALL)
        # Data calls need no token.
        assert stub.Predict(predict_request(models.inputs(2)), timeout=5).model_version == "v1"
        assert stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5).metadata.version == "v1"


def test_rollback_needs_the_token(tmp_path: Path, onnx_a: bytes, onnx_b: bytes):
    with predictor(tmp_path, ADMIN) as stub:
        publish(stub, onnx_a, "v1", ADMIN_CALL)
        publish(stub, onnx_b, "v2", ADMIN_CALL)
        rollback = predictor_pb2.RollbackRequest()
        assert code_of(lambda: stub.Rollback(rollback, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: stub.Rollback(rollback, timeout=5, metadata=WRONG_CALL)) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5).metadata.version == "v2"
        assert stub.Rollback(rollback, timeout=5, metadata=ADMIN_CALL).metadata.version == "v1"


def test_a_server_without_a_token_refuses_every_admin_call(tmp_path: Path, onnx_a: bytes):
    with predictor(tmp_path, AdminAuth()) as stub:
        assert code_of(lambda: publish(stub, onnx_a, "v1", ADMIN_CALL)) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda: stub.Rollback(predictor_pb2.RollbackRequest(), timeout=5)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )


def test_insecure_mode_accepts_admin_calls_without_a_token(tmp_path: Path, onnx_a: bytes):
    with predictor(tmp_path, AdminAuth(insecure=True)) as stub:
        publish(stub, onnx_a, "v1", ())
        assert stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5).metadata.version == "v1"


def test_train_needs_the_token():
    running = tr_server.start(tr_config.TrainerConfig(host="127.0.0.1", port=0, admin=ADMIN))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = trainer_pb2_grpc.TrainerStub(channel)
            request = trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=1))
            assert code_of(lambda: list(stub.Train(request, timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: list(stub.Train(request, timeout=10, metadata=WRONG_CALL))) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            # GetStatus reads; it needs no token.
            stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
    finally:
        running.stop(0)


def test_the_token_file_is_read_and_checked(tmp_path: Path):
    token_file = tmp_path / "token"
    token = admin.write_token(token_file)
    assert token_file.stat().st_mode & 0o077 == 0
    cfg = pr_config.load(["--admin-token-file", str(token_file)])
    assert cfg.admin == AdminAuth(token=token)
    assert pr_config.load([]).admin == AdminAuth()
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        admin.from_args(pr_config.parser().parse_args(["--admin-token-file", str(short)]))
    with pytest.raises(ConfigError, match="cannot read"):
        admin.from_args(pr_config.parser().parse_args(["--admin-token-file", str(tmp_path / "missing")]))
