"""Every server offers reflection and the standard health service, as
grpcurl and Kubernetes probes expect; the predictor's health tells the truth
about having a model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ace.v1 import trainer_pb2, trainer_pb2_grpc
from tests.e2e.conftest import Fleet

pytestmark = pytest.mark.slow

SERVICES = {
    "feature_store": "ace.v1.FeatureStore",
    "predictor": "ace.v1.Predictor",
    "router": "ace.v1.Router",
    "trainer": "ace.v1.Trainer",
}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(channel: grpc.Channel, service: str = "") -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    assert Path(found).exists(), "grpcurl is installed by requirements-dev.txt"
    return found


def test_every_server_lists_its_service_health_and_reflection(fleet: Fleet):
    for name, service in SERVICES.items():
        listed = set(ProtoReflectionDescriptorDatabase(fleet.channels[name]).get_services())
        assert listed == {service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}, name


def test_health_is_truthful_until_the_predictor_has_a_model(fleet: Fleet):
    for name in ("feature_store", "router", "trainer"):
        assert health(fleet.channels[name]) == SERVING, name
        assert health(fleet.channels[name], SERVICES[name]) == SERVING, name
    # The server is alive (what a liveness probe asks), the service not ready.
    assert health(fleet.channels["predictor"]) == SERVING
    assert health(fleet.channels["predictor"], SERVICES["predictor"]) == NOT_SERVING
    request = trainer_pb2.TrainRequest(
        synthetic=trainer_pb2.SyntheticSource(seed=3, backends=3, duration_s=7200), publish=True, n_estimators=10
    )
    progress = list(
        trainer_pb2_grpc.TrainerStub(fleet.channels["trainer"]).Train(request, timeout=120, metadata=fleet.admin)
    )
    assert progress[-1].result.published, progress[-1].result.publish_error
    assert health(fleet.channels["predictor"], SERVICES["predictor"]) == SERVING


def test_grpcurl_lists_and_describes_every_service(fleet: Fleet):
    for name, service in SERVICES.items():
        listing = subprocess.run(
            [grpcurl(), "-plaintext", fleet.addr(name), "list"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
        assert service in listing and "grpc.health.v1.Health" in listing
    described = subprocess.run(
        [grpcurl(), "-plaintext", fleet.addr("router"), "describe", "ace.v1.DecideRequest"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    # The proto comments are the API reference and travel with reflection.
    assert "empty means every known backend" in described
    assert "repeated string candidates = 2;" in described
