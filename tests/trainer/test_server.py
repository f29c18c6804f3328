"""The real trainer server on port 0, talked to through the generated stubs,
with a fake predictor behind it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import onnxruntime
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ace.v1 import trainer_pb2, trainer_pb2_grpc
from services.common import features
from services.common.serving import RunningServer
from services.common.telemetry import Point, write_csv
from services.trainer import job
from services.trainer.config import TrainerConfig
from services.trainer.server import start
from tests.fakes import OPEN_ADMIN
from tests.ports import free_port

# Every stage, once, in the contract's order.
STAGES = [
    trainer_pb2.HISTORY,
    trainer_pb2.FEATURES,
    trainer_pb2.FIT,
    trainer_pb2.EXPORT,
    trainer_pb2.VERIFY,
    trainer_pb2.PUBLISH,
    trainer_pb2.DONE,
]

SMALL = trainer_pb2.SyntheticSource(seed=3, backends=3, duration_s=5400.0)


class _Trainer:
    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        self.stub = trainer_pb2_grpc.TrainerStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.running.stop(0)


@pytest.fixture
def trainer(fake_predictor, tmp_path) -> Iterator[_Trainer]:
    _, port = fake_predictor
    t = _Trainer(
        start(
            TrainerConfig(
                host="127.0.0.1", port=0, admin=OPEN_ADMIN, predictor_addr=f"127.0.0.1:{port}", data_dir=tmp_path
            )
        )
    )
    yield t
    t.close()


def test_health_says_serving_at_once(trainer):
    health = health_pb2_grpc.HealthStub(trainer.channel)
    for service in ("", "ace.v1.Trainer"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_train_streams_the_stages_in_order_and_publishes_the_exact_bytes(trainer, fake_predictor):
    fake, _ = fake_predictor
    request = trainer_pb2.TrainRequest(synthetic=SMALL, publish=True, n_estimators=20)
    steps = list(trainer.stub.Train(request, timeout=60))

    assert [s.stage for s in steps] == list(STAGES)
    assert all(s.message for s in steps)
    assert not any(s.HasField("result") for s in steps[:-1])
    result = steps[-1].result
    assert result.published
    assert result.publish_error == ""
    assert result.metrics.test_rows > 0
    assert result.metrics.train_rows > result.metrics.test_rows
    assert result.metrics.horizon_s == 300.0
    assert result.metrics.threshold_ms == 300.0
    assert result.metrics.onnx_max_abs_diff_ms < 1e-3

    (got,) = fake.received
    metadata = got.metadata
    assert metadata.version == result.version
    assert hashlib.sha256(got.onnx_bytes).hexdigest() == metadata.sha256
    assert len(got.onnx_bytes) == metadata.size_bytes
    assert metadata.schema_version == features.SCHEMA_VERSION
    assert tuple(metadata.feature_names) == features.FEATURE_NAMES
    assert metadata.metrics["mae_ms"] == result.metrics.mae_ms
    # What the real predictor checks: the model loads and reproduces the
    # reference predictions within the tolerance.
    session = onnxruntime.InferenceSession(got.onnx_bytes, providers=["CPUExecutionProvider"])
    inputs = np.asarray(metadata.reference_inputs, dtype=np.float32).reshape(-1, len(metadata.feature_names))
    assert len(inputs) == 64
    (out,) = session.run(None, {"features": inputs})
    np.testing.assert_allclose(out.reshape(-1), metadata.reference_outputs, atol=metadata.reference_tolerance_ms)


def test_status_after_a_run(trainer):
    before = trainer.stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
    assert not before.training
    assert not before.HasField("last_result")
    assert not before.HasField("last_finished_at")

    steps = list(trainer.stub.Train(trainer_pb2.TrainRequest(synthetic=SMALL, n_estimators=5), timeout=60))
    after = trainer.stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
    assert not after.training
    assert after.last_result == steps[-1].result
    assert not after.last_result.published
    assert after.last_finished_at.seconds > 0


def test_unreachable_predictor_gives_an_unpublished_result(fake_predictor):
    address = f"127.0.0.1:{free_port()}"
    t = _Trainer(start(TrainerConfig(host="127.0.0.1", port=0, admin=OPEN_ADMIN, predictor_addr=address)))
    try:
        request = trainer_pb2.TrainRequest(synthetic=SMALL, publish=True, n_estimators=5)
        steps = list(t.stub.Train(request, timeout=60))
    finally:
        t.close()
    assert [s.stage for s in steps] == list(STAGES)
    result = steps[-1].result
    assert result.version
    assert not result.published
    assert result.publish_error.startswith(f"{address}: UNAVAILABLE")
    assert [(r.address, r.published) for r in result.replicas] == [(address, False)]


def test_a_second_train_while_one_runs_is_a_failed_precondition(fake_predictor):
    _, port = fake_predictor
    entered, release = threading.Event(), threading.Event()

    def gated_history(source: job.Source) -> list[Point]:
        entered.set()
        assert release.wait(30)
        return job.load_history(source)

    t = _Trainer(
        start(
            TrainerConfig(host="127.0.0.1", port=0, admin=OPEN_ADMIN, predictor_addr=f"127.0.0.1:{port}"),
            load_history=gated_history,
        )
    )
    try:
        first = t.stub.Train(trainer_pb2.TrainRequest(synthetic=SMALL, n_estimators=5), timeout=60)
        assert entered.wait(30)
        assert t.stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5).training

        with pytest.raises(grpc.RpcError) as refused:
            list(t.stub.Train(trainer_pb2.TrainRequest(synthetic=SMALL), timeout=10))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already running" in refused.value.details()

        release.set()
        assert [s.stage for s in first][-1] == trainer_pb2.DONE
        assert not t.stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5).training
    finally:
        release.set()
        t.close()


def test_train_from_csv(trainer, tmp_path):
    points = job.load_history(job.SyntheticSource(seed=6, backends=2, duration_s=3600.0, interval_s=10.0))
    path = tmp_path / "history.csv"
    write_csv(path, reversed(points))
    steps = list(trainer.stub.Train(trainer_pb2.TrainRequest(csv_path=str(path), n_estimators=5), timeout=60))
    assert steps[0].message.startswith(f"{len(points)} points of 2 backends")
    assert steps[-1].result.metrics.test_rows > 0


def _code_and_details(stub, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as failed:
        list(stub.Train(request, timeout=30))
    return failed.value.code(), failed.value.details()


def test_a_bad_csv_path_is_invalid_argument_naming_it(trainer, tmp_path):
    missing = tmp_path / "missing.csv"
    code, details = _code_and_details(trainer.stub, trainer_pb2.TrainRequest(csv_path=str(missing)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"csv_path: cannot read {missing}")

    bad = tmp_path / "bad.csv"
    write_csv(bad, [Point("a", 1000.0, 1.0, 50.0, 0.0)])
    with bad.open("a") as f:
        f.write("a,1010,1,-5,0\n")
    code, details = _code_and_details(trainer.stub, trainer_pb2.TrainRequest(csv_path=str(bad)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"csv_path: {bad}:3: latency_ms")


def test_a_csv_path_outside_the_data_dir_is_invalid_argument(trainer, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    write_csv(outside, [Point("a", 1000.0, 1.0, 50.0, 0.0)])
    try:
        for requested in (str(outside), f"../{outside.name}"):
            code, details = _code_and_details(trainer.stub, trainer_pb2.TrainRequest(csv_path=requested))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details == f"csv_path: {requested!r} is outside the trainer's --data-dir"
    finally:
        outside.unlink()


def test_without_a_data_dir_csv_path_is_failed_precondition_naming_the_flag(fake_predictor, tmp_path):
    write_csv(tmp_path / "history.csv", [Point("a", 1000.0, 1.0, 50.0, 0.0)])
    t = _Trainer(start(TrainerConfig(host="127.0.0.1", port=0, admin=OPEN_ADMIN)))
    try:
        code, details = _code_and_details(t.stub, trainer_pb2.TrainRequest(csv_path=str(tmp_path / "history.csv")))
    finally:
        t.close()
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "--data-dir" in details


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (trainer_pb2.TrainRequest(), "source"),
        (trainer_pb2.TrainRequest(synthetic=SMALL, max_depth=17), "max_depth"),
        (trainer_pb2.TrainRequest(synthetic=SMALL, horizon_s=-1), "horizon_s"),
        (trainer_pb2.TrainRequest(synthetic=SMALL, threshold_ms=float("nan")), "threshold_ms"),
        (trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(backends=500)), "synthetic.backends"),
    ],
)
def test_out_of_range_requests_are_invalid_argument_naming_the_field(trainer, request_, field):
    code, details = _code_and_details(trainer.stub, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}: ")


def test_too_little_history_is_failed_precondition(trainer):
    short = trainer_pb2.SyntheticSource(seed=1, backends=1, duration_s=900.0)
    code, details = _code_and_details(trainer.stub, trainer_pb2.TrainRequest(synthetic=short))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "training needs at least 100" in details
    assert not trainer.stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5).training
