"""The trainer on the feature store's recorded history, publishing to more
than one predictor replica: a real feature store, two real predictors and
the trainer, each on port 0."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common import synthetic
from services.common.addresses import Target, resolve
from services.common.points import to_message
from services.common.serving import RunningServer
from services.feature_store import server as fs_server
from services.feature_store.config import FeatureStoreConfig
from services.predictor import server as pr_server
from services.predictor.config import PredictorConfig
from services.trainer import server as tr_server
from services.trainer.config import TrainerConfig
from tests.fakes import ADMIN, ADMIN_CALL
from tests.ports import free_port

HISTORY = synthetic.random_history(5, 3, 2 * 3600.0)  # 3 backends, 2 h every 10 s: 2160 points


def addr(running: RunningServer) -> str:
    return f"127.0.0.1:{running.port}"


@dataclass
class Setup:
    feature_store: RunningServer
    predictors: list[RunningServer]
    model_dirs: list[Path]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    feature_store = fs_server.start(FeatureStoreConfig(host="127.0.0.1", port=0, history_dir=tmp_path / "history"))
    dirs = [tmp_path / "models-0", tmp_path / "models-1"]
    predictors = [pr_server.start(PredictorConfig(host="127.0.0.1", port=0, admin=ADMIN, model_dir=d)) for d in dirs]
    with grpc.insecure_channel(addr(feature_store)) as channel:
        stub = feature_store_pb2_grpc.FeatureStoreStub(channel)
        response = stub.Ingest(feature_store_pb2.IngestRequest(points=[to_message(p) for p in HISTORY.points]))
    assert response.accepted == len(HISTORY.points) == 2160
    made = Setup(feature_store, predictors, dirs)
    yield made
    for running in [made.feature_store, *made.predictors]:
        running.stop(0)


def train(trainer_config: TrainerConfig, source: trainer_pb2.FeatureStoreSource) -> list[trainer_pb2.TrainProgress]:
    running = tr_server.start(trainer_config)
    try:
        with grpc.insecure_channel(addr(running)) as channel:
            request = trainer_pb2.TrainRequest(feature_store=source, publish=True, n_estimators=5)
            return list(trainer_pb2_grpc.TrainerStub(channel).Train(request, timeout=120, metadata=ADMIN_CALL))
    finally:
        running.stop(0)


def active_version(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        info = predictor_pb2_grpc.PredictorStub(channel).GetActiveModel(predictor_pb2.GetActiveModelRequest())
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="ace.v1.Predictor"), timeout=5
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    return str(info.metadata.version)


def trainer_config(setup: Setup, publish_addrs: str = "") -> TrainerConfig:
    return TrainerConfig(
        host="127.0.0.1",
        port=0,
        predictor_addr=addr(setup.predictors[0]),
        predictor_publish_addrs=publish_addrs,
        feature_store_addr=addr(setup.feature_store),
        admin=ADMIN,
    )


def test_trains_on_the_recorded_history_and_every_replica_serves_the_version(setup: Setup):
    p0, p1 = (addr(p) for p in setup.predictors)
    steps = train(trainer_config(setup, f"{p0}, {p1}"), trainer_pb2.FeatureStoreSource())
    assert steps[0].message == "2160 points of 3 backends from feature store history (all)"
    result = steps[-1].result
    assert result.published, result.publish_error
    assert [(r.address, r.published) for r in result.replicas] == [(p0, True), (p1, True)]
    assert steps[-2].message == f"published {result.version} to the predictor (2 replicas)"
    assert active_version(p0) == active_version(p1) == result.version

    # A replica restarted on its volume serves the same version at once.
    setup.predictors[1].stop(0)
    setup.predictors[1] = pr_server.start(
        PredictorConfig(host="127.0.0.1", port=0, admin=ADMIN, model_dir=setup.model_dirs[1])
    )
    assert active_version(addr(setup.predictors[1])) == result.version


def test_a_duration_reads_the_newest_span_only(setup: Setup):
    steps = train(trainer_config(setup), trainer_pb2.FeatureStoreSource(duration_s=3600))
    # 361 points per backend: both ends of the hour are included.
    assert steps[0].message == "1083 points of 3 backends from feature store history (the last 3600 s)"
    assert steps[-1].result.published


def test_a_replica_that_is_down_is_reported_and_the_others_still_get_the_version(setup: Setup):
    up, down = addr(setup.predictors[0]), f"127.0.0.1:{free_port()}"
    result = train(trainer_config(setup, f"{up},{down}"), trainer_pb2.FeatureStoreSource())[-1].result
    assert not result.published
    assert [(r.address, r.published) for r in result.replicas] == [(up, True), (down, False)]
    assert result.publish_error.startswith(f"{down}: UNAVAILABLE")
    assert active_version(up) == result.version


def test_a_feature_store_without_history_is_a_failed_precondition(tmp_path: Path):
    feature_store = fs_server.start(FeatureStoreConfig(host="127.0.0.1", port=0))
    try:
        config = TrainerConfig(host="127.0.0.1", port=0, admin=ADMIN, feature_store_addr=addr(feature_store))
        with pytest.raises(grpc.RpcError) as err:
            train(config, trainer_pb2.FeatureStoreSource())
    finally:
        feature_store.stop(0)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("feature_store: history: this feature store keeps none")


def test_an_unreachable_feature_store_is_unavailable():
    config = TrainerConfig(host="127.0.0.1", port=0, admin=ADMIN, feature_store_addr=f"127.0.0.1:{free_port()}")
    with pytest.raises(grpc.RpcError) as err:
        train(config, trainer_pb2.FeatureStoreSource())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details().startswith("feature_store: cannot read its history")


def test_a_negative_duration_is_invalid_and_named():
    with pytest.raises(grpc.RpcError) as err:
        train(TrainerConfig(host="127.0.0.1", port=0, admin=ADMIN), trainer_pb2.FeatureStoreSource(duration_s=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("feature_store.duration_s:")


def test_resolve_expands_each_host_to_its_addresses_once():
    table = {"predictor-pods": ["10.0.0.5", "10.0.0.6"], "fd00::7": ["fd00::7"], "10.0.0.5": ["10.0.0.5"]}

    def resolver(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    assert resolve("predictor-pods:50052, [fd00::7]:50052,10.0.0.5:50052,,nowhere:1,bad", resolver) == [
        Target("10.0.0.5:50052"),
        Target("10.0.0.6:50052"),
        Target("[fd00::7]:50052"),
        Target("nowhere:1", "cannot resolve nowhere:1: Name or service not known"),
        Target("bad", "cannot resolve bad: 'bad' is not host:port"),
    ]
