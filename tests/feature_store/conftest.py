from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from ace.v1 import feature_store_pb2_grpc
from services.common.serving import RunningServer
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.server import start


@dataclass
class Served:
    running: RunningServer
    channel: grpc.Channel
    stub: feature_store_pb2_grpc.FeatureStoreStub


@pytest.fixture
def served() -> Iterator[Served]:
    running = start(FeatureStoreConfig(host="localhost", port=0, max_points_per_request=50, max_streams=4))
    # No channel_ready_future: the port is bound when start returns, and a
    # channel that was watched for readiness takes 0.2 s to close.
    channel = grpc.insecure_channel(f"localhost:{running.port}")
    yield Served(running, channel, feature_store_pb2_grpc.FeatureStoreStub(channel))
    channel.close()
    running.stop(0)
