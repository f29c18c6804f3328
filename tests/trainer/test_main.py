"""python -m services.trainer as a process: it says where it listens, serves
health, and exits 0 on SIGTERM."""

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


def test_starts_on_port_0_and_stops_on_sigterm():
    env = {**os.environ, "ACE_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.trainer", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            event = json.loads(line)
            if event.get("event") == "listening":
                port = event["port"]
                break
        assert port, "the trainer exited without logging listening"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="ace.v1.Trainer"), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
