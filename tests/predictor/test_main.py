"""`python -m services.predictor` as a process: it says where it listens and
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def test_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "ACE_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "services.predictor", "--host", "127.0.0.1", "--port", "0"]
    command += ["--model-dir", str(tmp_path / "models")]
    with subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            port = None
            for line in process.stderr:
                event = json.loads(line)
                if event["event"] == "listening":
                    port = int(event["port"])
                    break
            assert port, "the process ended without logging `listening`"

            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                reply = health.Check(health_pb2.HealthCheckRequest(service="ace.v1.Predictor"), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

            process.send_signal(signal.SIGTERM)
            _, rest = process.communicate(timeout=30)
            assert process.returncode == 0, rest
            assert (tmp_path / "models" / "versions").is_dir()
        finally:
            if process.poll() is None:
                process.kill()
