"""Each service as users start it, `python -m services.<name>`: it listens on
the port it was given (0 here), reports truthful health, and on SIGTERM goes
NOT_SERVING, finishes, and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

CASES = {
    "feature_store": ("ace.v1.FeatureStore", SERVING),
    "predictor": ("ace.v1.Predictor", NOT_SERVING),  # no model yet
    "router": ("ace.v1.Router", SERVING),
    "trainer": ("ace.v1.Trainer", SERVING),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_starts_reports_health_and_stops_on_sigterm(name: str, tmp_path: Path):
    service, expected = CASES[name]
    command = [sys.executable, "-m", f"services.{name}", "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "ACE_LOG_FORMAT": "json", "ACE_MODEL_DIR": str(tmp_path / "models")}
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            port = 0
            for line in process.stderr:
                event = json.loads(line)
                if event.get("event") == "listening":
                    port = int(event["port"])
                    assert event["service"] == name
                    break
            assert port, f"{name} ended without logging `listening`"
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=10
                )
                assert reply.status == expected
            process.send_signal(signal.SIGTERM)
            _, rest = process.communicate(timeout=30)
            assert process.returncode == 0, rest
        finally:
            if process.poll() is None:
                process.kill()
