"""`python -m services.feature_store` as a process: it says where it
listens, reports SERVING and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.feature_store.server import SERVICE_NAME

ROOT = Path(__file__).resolve().parents[2]


def test_the_process_serves_until_sigterm_and_exits_zero():
    env = {**os.environ, "ACE_LOG_FORMAT": "json", "ACE_GRACE_S": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.feature_store", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") == "listening":
                port = event["port"]
                break
        assert port, "the process ended without logging `listening`"

        with grpc.insecure_channel(f"localhost:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            response = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING

        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
