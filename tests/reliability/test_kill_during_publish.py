"""The model registry survives `kill -9` at any point of a publish. The
predictor runs as a process and is killed (SIGKILL) mid-stream, at every
file-system step of the registry's write, and right after it answered; a
predictor restarted on the same directory serves an intact version: the
previous one when the kill came before the commit (the replace of
state.json), the new one after."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.predictor import server
from services.predictor.config import PredictorConfig
from services.predictor.registry import Registry
from tests.fakes import OPEN_ADMIN
from tests.predictor import models
from tests.predictor.test_server import predict_request
from tools.constellation import Process

pytestmark = pytest.mark.slow

READY_S = 60.0


@pytest.fixture(scope="module")
def onnx_v1() -> bytes:
    return models.onnx_model(seed=0)


@pytest.fixture(scope="module")
def onnx_v2() -> bytes:
    # Large enough for several chunks, so "half the stream" is a real cut.
    return models.onnx_model(seed=1)


@pytest.fixture
def with_v1(tmp_path: Path, onnx_v1: bytes) -> Path:
    """A model directory whose active version is v1."""
    model_dir = tmp_path / "models"
    Registry(model_dir).publish(models.make_meta(onnx_v1, version="v1"), onnx_v1)
    return model_dir


@contextmanager
def predictor_process(model_dir: Path, module: str, *extra: str) -> Iterator[tuple[Process, str]]:
    args = [sys.executable, "-m", module, *extra, "--host", "127.0.0.1", "--port", "0"]
    args += ["--model-dir", str(model_dir), "--insecure-admin", "true"]
    env = {**os.environ, "ACE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    popen = subprocess.Popen(
        args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    process = Process("predictor", popen, model_dir.parent / "predictor.log")
    process.start_pump()
    try:
        assert process.listening.wait(READY_S) and process.port, (model_dir.parent / "predictor.log").read_text()
        yield process, f"127.0.0.1:{process.port}"
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait()
        process.close()


def served_after_restart(model_dir: Path) -> tuple[str, list[str]]:
    """Restarts a predictor on `model_dir`: the version it serves (checked
    with a Predict) and the versions it lists."""
    running = server.start(PredictorConfig(host="127.0.0.1", port=0, model_dir=model_dir, admin=OPEN_ADMIN))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = predictor_pb2_grpc.PredictorStub(channel)
            active = stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=10).metadata.version
            predicted = stub.Predict(predict_request(models.inputs(3)), timeout=10)
            assert predicted.model_version == active and len(predicted.predictions) == 3
            listed = sorted(
                m.metadata.version for m in stub.ListModels(predictor_pb2.ListModelsRequest(), timeout=10).models
            )
    finally:
        running.stop(0)
    assert not any((model_dir / "staging").iterdir()), "a half-written version was left in staging"
    return active, listed


def test_a_kill_mid_stream_leaves_the_previous_version_active(with_v1: Path, onnx_v2: bytes):
    requests = models.publish_requests(models.make_meta(onnx_v2, version="v2"), onnx_v2, chunk_size=256)
    half = len(requests) // 2
    assert half >= 2
    half_sent = threading.Event()
    never = threading.Event()

    def stream() -> Iterator[predictor_pb2.PublishModelRequest]:
        yield from requests[:half]
        half_sent.set()
        never.wait(READY_S)  # the rest never comes: the process dies first

    with predictor_process(with_v1, "services.predictor") as (process, addr), grpc.insecure_channel(addr) as channel:
        call = predictor_pb2_grpc.PredictorStub(channel).PublishModel.future(stream(), timeout=READY_S)
        assert half_sent.wait(READY_S)
        process.popen.send_signal(signal.SIGKILL)
        assert process.popen.wait(READY_S) == -signal.SIGKILL
        never.set()
        with pytest.raises(grpc.RpcError):
            call.result()
    assert served_after_restart(with_v1) == ("v1", ["v1"])


def test_a_kill_at_every_step_of_the_registrys_write_leaves_an_intact_version(
    tmp_path: Path, with_v1: Path, onnx_v2: bytes
):
    requests = models.publish_requests(models.make_meta(onnx_v2, version="v2"), onnx_v2, chunk_size=4096)
    outcomes: list[tuple[int, str, list[str]]] = []
    crash_at = 0
    while True:
        crash_at += 1
        assert crash_at < 50, "the publish never finished"
        model_dir = tmp_path / f"crash-{crash_at}" / "models"
        shutil.copytree(with_v1, model_dir)
        module = "tests.reliability.crashing_predictor"
        with predictor_process(model_dir, module, str(crash_at)) as (process, addr), grpc.insecure_channel(addr) as ch:
            try:
                predictor_pb2_grpc.PredictorStub(ch).PublishModel(iter(requests), timeout=READY_S)
                finished = True
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                assert process.popen.wait(READY_S) == -signal.SIGKILL
                finished = False
        active, listed = served_after_restart(model_dir)
        outcomes.append((crash_at, active, listed))
        if finished:
            break
    # The write has several steps; each kill before the commit leaves v1,
    # each one after leaves v2, and a publish that answered is durable.
    steps = len(outcomes) - 1
    assert steps >= 6, outcomes
    actives = [active for _, active, _ in outcomes]
    commit = actives.index("v2")
    assert actives == ["v1"] * commit + ["v2"] * (len(actives) - commit), outcomes
    assert all(listed in (["v1"], ["v1", "v2"]) for _, _, listed in outcomes), outcomes
    print(f"kill -9 at {steps} points of the registry write: {outcomes}")


def test_a_kill_right_after_the_answer_keeps_the_new_version(with_v1: Path, onnx_v2: bytes):
    requests = models.publish_requests(models.make_meta(onnx_v2, version="v2"), onnx_v2, chunk_size=4096)
    with predictor_process(with_v1, "services.predictor") as (process, addr), grpc.insecure_channel(addr) as channel:
        info = predictor_pb2_grpc.PredictorStub(channel).PublishModel(iter(requests), timeout=READY_S)
        assert info.active
        process.popen.send_signal(signal.SIGKILL)
        assert process.popen.wait(READY_S) == -signal.SIGKILL
    assert served_after_restart(with_v1) == ("v2", ["v1", "v2"])
