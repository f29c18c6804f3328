"""The router server on port 0 between a fake feature store and a fake
predictor whose forecast is the observed latency, for the tests of this
folder that need no more."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from ace.v1 import feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2_grpc
from services.router.config import load
from services.router.server import start
from tests.fakes import FakeFeatureStore, FakePredictor, serve
from tests.router.test_server import Watch


@pytest.fixture
def router(request: pytest.FixtureRequest) -> Iterator[tuple[FakeFeatureStore, router_pb2_grpc.RouterStub, Watch]]:
    # Flags added to the router's; by default the breakers open on one update,
    # as these tests' spikes are single updates (test_debounce.py passes none).
    extra: list[str] = getattr(request, "param", ["--open-after-s", "0"])
    store = FakeFeatureStore()
    # The forecast is the observed latency.
    predictor = FakePredictor(lambda _b, latency: latency)
    fs_server, fs_port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    pr_server, pr_port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
    local = ["--host", "127.0.0.1", "--port", "0"]
    deps = ["--feature-store-addr", f"127.0.0.1:{fs_port}", "--predictor-addr", f"127.0.0.1:{pr_port}"]
    running = start(load([*local, *deps, *extra]))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = router_pb2_grpc.RouterStub(channel)
    watch = Watch(stub)
    yield store, stub, watch
    watch.call.cancel()
    channel.close()
    running.stop(0)
    fs_server.stop(0)
    pr_server.stop(0)
