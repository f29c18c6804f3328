"""The router answers within its deadline when the predictor or the
feature store is slow, not only down: Decide never waits on them, the
router's calls carry deadlines, and a breaker stops calling a predictor that
keeps timing out. The slow dependencies are fakes served on port 0."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2, router_pb2_grpc
from services.common.features import FEATURE_NAMES, SCHEMA_VERSION
from services.router.config import load
from services.router.dependency import CallBreaker, CallState
from services.router.server import start
from tests.fakes import FakeFeatureStore, FakePredictor, serve, vector
from tests.router.test_server import Watch, at

# It waits out the router's predict deadline, call after call, on a predictor that never answers.
pytestmark = pytest.mark.slow

PREDICT_TIMEOUT_S = 0.2
FALLBACK = "reactive fallback on observed latency"


class SlowPredictor(FakePredictor):
    """Answers every Predict only after `delay_s` (or when released)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(lambda _b, latency: latency)
        self.delay_s = delay_s
        self.calls = 0
        self.released = threading.Event()

    def Predict(self, request, context):
        self.calls += 1
        self.released.wait(self.delay_s)
        return super().Predict(request, context)


class SilentFeatureStore(feature_store_pb2_grpc.FeatureStoreServicer):
    """Opens the watch and then sends nothing until released."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def WatchFeatures(self, request, context) -> Iterator[feature_store_pb2.GetFeaturesResponse]:
        self.released.wait(60)
        yield feature_store_pb2.GetFeaturesResponse(feature_names=FEATURE_NAMES, schema_version=SCHEMA_VERSION)


def router(fs_port: int, pr_port: int) -> tuple[object, router_pb2_grpc.RouterStub, grpc.Channel]:
    cfg = load(
        [
            *("--host", "127.0.0.1", "--port", "0", "--predict-timeout-s", str(PREDICT_TIMEOUT_S)),
            *("--feature-store-addr", f"127.0.0.1:{fs_port}", "--predictor-addr", f"127.0.0.1:{pr_port}"),
            # Open breakers drain, so a decision shows the fallback routing around one.
            *("--open-share", "0"),
        ]
    )
    running = start(cfg)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return running, router_pb2_grpc.RouterStub(channel), channel


@pytest.fixture
def slow_predictor_rig() -> Iterator[tuple[FakeFeatureStore, SlowPredictor, router_pb2_grpc.RouterStub, Watch]]:
    store = FakeFeatureStore()
    predictor = SlowPredictor(delay_s=30.0)
    fs_server, fs_port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    pr_server, pr_port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
    running, stub, channel = router(fs_port, pr_port)
    watch = Watch(stub)
    yield store, predictor, stub, watch
    predictor.released.set()
    watch.call.cancel()
    channel.close()
    running.stop(1)  # type: ignore[attr-defined]
    fs_server.stop(0)
    pr_server.stop(0)


def test_a_slow_predictor_trips_the_routers_breaker_and_decide_names_the_fallback(slow_predictor_rig):
    store, predictor, stub, watch = slow_predictor_rig
    # Each batch waits one Predict deadline until the breaker opens after
    # three timeouts in a row; the later batches apply at once, unforecast.
    # Telemetry every 10 s of event time: b stays over the threshold for
    # longer than the router's --open-after-s.
    for t in range(1, 9):
        store.batches.put([vector("a", 100 + 10 * t, 120), vector("b", 100 + 10 * t, 500)])
        # Decide answers within a deadline shorter than the predictor's
        # delay, whatever the sync loop is waiting on.
        decision = stub.Decide(router_pb2.DecideRequest(request_id=str(t), candidates=["a", "b"]), timeout=1.0)
        assert decision.backend_id in ("a", "b")
    watch.until(at("a", 180))
    watch.until(at("b", 180))
    assert predictor.calls == 3  # then the breaker stopped calling
    decision = stub.Decide(router_pb2.DecideRequest(request_id="x", candidates=["a", "b"]), timeout=1.0)
    assert decision.basis == router_pb2.OBSERVED_LATENCY
    assert FALLBACK in decision.reason
    # b's observed 500 ms breaches the 300 ms threshold: the fallback still routes around it.
    assert decision.backend_id == "a"
    assert watch.routes["b"].state == router_pb2.OPEN


def test_a_silent_feature_store_does_not_hold_decide():
    store = SilentFeatureStore()
    predictor = FakePredictor(lambda _b, latency: latency)
    fs_server, fs_port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    pr_server, pr_port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
    running, stub, channel = router(fs_port, pr_port)
    try:
        decisions = [
            stub.Decide(router_pb2.DecideRequest(request_id=str(i), candidates=["a", "b"]), timeout=1.0)
            for i in range(4)
        ]
        assert {d.basis for d in decisions} == {router_pb2.NO_TELEMETRY}
        assert sorted(d.backend_id for d in decisions) == ["a", "a", "b", "b"]  # round robin
    finally:
        store.released.set()
        channel.close()
        running.stop(1)  # type: ignore[attr-defined]
        fs_server.stop(0)
        pr_server.stop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_call_breaker_opens_after_failures_in_a_row_and_tries_again_after_the_cooldown():
    clock = Clock()
    breaker = CallBreaker("dep", failures=3, cooldown_s=5.0, clock=clock)

    def state() -> CallState:
        return breaker.state

    for ok in (False, False, True, False, False):
        assert breaker.allow()
        breaker.record(ok)
    assert state() is CallState.CLOSED  # a success in between resets the count
    assert breaker.allow()
    breaker.record(False)
    assert state() is CallState.OPEN
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert breaker.allow()  # the trial call
    assert state() is CallState.HALF_OPEN
    assert not breaker.allow()  # one trial at a time
    breaker.record(False)
    assert state() is CallState.OPEN
    clock.now = 9.9
    assert not breaker.allow()  # the cool-down starts again from the failed trial
    clock.now = 10.0
    assert breaker.allow()
    breaker.record(True)
    assert state() is CallState.CLOSED
    with pytest.raises(ValueError, match="failures"):
        CallBreaker("dep", failures=0)
