"""The supervisor of `make up`: a service that dies is started again on the
same port, its pid file follows it, and stop() still ends everything
gracefully."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.constellation import Constellation
from tools.faults import LocalFaults

pytestmark = pytest.mark.slow


def test_a_killed_service_is_restarted_on_its_port(tmp_path: Path):
    lines: list[str] = []
    constellation = Constellation(
        tmp_path, extra_args={"predictor": ["--model-dir", str(tmp_path / "models")]}, supervise=True, echo=lines.append
    )
    with constellation:
        port = constellation.processes["feature_store"].port
        pid_file = constellation.pid_path("feature_store")
        first = int(pid_file.read_text())
        assert first == constellation.processes["feature_store"].popen.pid
        assert LocalFaults(tmp_path).kill("feature_store") == [f"pid {first}"]
        # Back on the same port: a call that waits for it succeeds.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="ace.v1.FeatureStore"), timeout=60, wait_for_ready=True
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        second = constellation.processes["feature_store"].popen.pid
        assert second != first and int(pid_file.read_text()) == second
        assert constellation.processes["feature_store"].port == port
        assert constellation.restarts["feature_store"] == 1
    assert constellation.exit_codes == {"trainer": 0, "router": 0, "predictor": 0, "feature_store": 0}
    assert not list((tmp_path / "pids").iterdir())
    assert any(line.startswith("supervisor: feature_store restarted") for line in lines)
