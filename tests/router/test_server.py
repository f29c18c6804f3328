"""The router as a real server on port 0, fed by fake dependencies that are
also real servers, through the ace.v1 contracts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc
import pytest

from ace.v1 import feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2, router_pb2_grpc
from services.common.timeutil import to_seconds
from services.router import policy
from services.router.config import load
from services.router.server import start
from tests.fakes import FakeFeatureStore, FakePredictor, serve, vector


class Watch:
    """Follows WatchRoutingTable and lets a test wait for a condition on it."""

    def __init__(self, stub: router_pb2_grpc.RouterStub) -> None:
        self.call = stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest())
        self.routes: dict[str, router_pb2.BackendRoute] = {}
        self.table = router_pb2.RoutingTable()
        self.cond = threading.Condition()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for message in self.call:
                with self.cond:
                    self.table = message
                    self.routes.update({r.backend_id: r for r in message.backends})
                    self.cond.notify_all()
        except grpc.RpcError:
            pass

    def until(self, predicate: Callable[[Watch], bool], timeout: float = 10) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), "condition not reached"


def at(backend: str, t: float) -> Callable[[Watch], bool]:
    return lambda w: backend in w.routes and to_seconds(w.routes[backend].as_of) >= t


@pytest.fixture
def rig() -> Iterator[tuple[FakeFeatureStore, FakePredictor, router_pb2_grpc.RouterStub, Watch]]:
    store = FakeFeatureStore()
    # The fake forecast is the observed latency plus 150 ms for backend "b".
    predictor = FakePredictor(lambda b, latency: latency + (150.0 if b == "b" else 0.0))
    fs_server, fs_port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    pr_server, pr_port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
    cfg = load(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--feature-store-addr",
            f"127.0.0.1:{fs_port}",
            "--predictor-addr",
            f"127.0.0.1:{pr_port}",
            # These tests' spikes are single updates; test_debounce.py runs the default.
            "--open-after-s",
            "0",
            # An open breaker drains its backend, so that the tests see the breaker act.
            "--open-share",
            "0",
        ]
    )
    running = start(cfg)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = router_pb2_grpc.RouterStub(channel)
    watch = Watch(stub)
    yield store, predictor, stub, watch
    watch.call.cancel()
    channel.close()
    running.stop(1)
    fs_server.stop(0)
    pr_server.stop(0)


def test_forecast_opens_a_breaker_before_the_observed_latency_breaches(rig):
    store, _predictor, stub, watch = rig
    # b's observed latency is 200 ms, under the 300 ms threshold; its forecast is 350 ms.
    store.batches.put([vector("a", 100, 120), vector("b", 100, 200)])
    watch.until(at("b", 100))
    assert watch.routes["b"].state == router_pb2.OPEN
    assert watch.routes["b"].basis == router_pb2.FORECAST
    assert watch.table.model_version == "fake-1"
    decisions = [stub.Decide(router_pb2.DecideRequest(request_id=str(i))) for i in range(4)]
    assert {d.backend_id for d in decisions} == {"a"}
    # The weighted rotation gives b a share by its capacity; its breaker moves those turns to a.
    rerouted = [d for d in decisions if d.action == router_pb2.REROUTE]
    assert rerouted
    assert all(list(d.skipped) == ["b"] and d.model_version == "fake-1" for d in rerouted)
    assert all(list(d.fallbacks) == ["b"] for d in decisions)


def test_in_flight_counts_make_decide_least_loaded(rig):
    store, _predictor, stub, watch = rig
    store.batches.put([vector("a", 100, 120), vector("b", 100, 200), vector("c", 100, 100)])
    watch.until(at("c", 100))
    assert watch.table.open_penalty == 2  # the default
    busy_c = stub.Decide(router_pb2.DecideRequest(candidates=["a", "c"], in_flight={"a": 1, "c": 2}))
    assert (busy_c.backend_id, busy_c.action) == ("a", router_pb2.PRIMARY)
    assert "least loaded for its speed (1 in flight" in busy_c.reason
    # b (open) has none in flight, the others one: it counts 2 and is passed over.
    moved = stub.Decide(router_pb2.DecideRequest(in_flight={"a": 1, "c": 1, "z": 0}))
    assert (moved.backend_id, moved.action, list(moved.skipped)) == ("c", router_pb2.REROUTE, ["b"])


def test_cold_backends_are_round_robin(rig):
    store, _predictor, stub, watch = rig
    store.batches.put([vector("a", 10, 100, points=1), vector("b", 10, 100, points=1)])
    watch.until(at("b", 10))
    decisions = [stub.Decide(router_pb2.DecideRequest()) for _ in range(4)]
    assert [d.backend_id for d in decisions] == ["a", "b", "a", "b"]
    assert {d.action for d in decisions} == {router_pb2.ROUND_ROBIN}
    assert {d.basis for d in decisions} == {router_pb2.COLD_START}


def test_predictor_down_falls_back_to_observed_latency_and_says_so(rig):
    store, predictor, stub, watch = rig
    predictor.down = True
    store.batches.put([vector("a", 100, 120), vector("b", 100, 320)])
    watch.until(lambda w: at("b", 100)(w) and not w.table.predictor_available)
    decision = stub.Decide(router_pb2.DecideRequest(candidates=["b", "a"]))
    assert decision.backend_id == "a"
    assert decision.basis == router_pb2.OBSERVED_LATENCY
    assert "observed" in decision.reason
    assert decision.reason.endswith("predictor unreachable or without a model: reactive fallback on observed latency")
    assert decision.model_version == ""
    predictor.down = False
    store.batches.put([vector("a", 110, 120), vector("b", 110, 120)])
    watch.until(lambda w: at("b", 110)(w) and w.table.predictor_available)
    assert watch.routes["a"].basis == router_pb2.FORECAST


def test_an_unproven_model_runs_in_shadow_and_the_breakers_on_observed_latency(rig):
    store, predictor, stub, watch = rig
    predictor.proven = False
    # b's forecast (350 ms) breaches, its observed latency (200 ms) does not.
    store.batches.put([vector("a", 100, 120), vector("b", 100, 200)])
    watch.until(lambda w: at("b", 100)(w) and w.table.predictor_available)
    assert not watch.table.model_proven
    assert (watch.routes["b"].state, watch.routes["b"].basis) == (router_pb2.CLOSED, router_pb2.MODEL_UNPROVEN)
    assert (watch.routes["b"].predicted_latency_ms, watch.routes["b"].risk_ms) == (350.0, 200.0)
    decision = stub.Decide(router_pb2.DecideRequest(candidates=["b"]))
    assert (decision.backend_id, decision.basis, decision.model_version) == ("b", router_pb2.MODEL_UNPROVEN, "")
    assert decision.reason.endswith(policy.UNPROVEN_NOTE.removeprefix("; "))
    report = stub.GetRiskReport(router_pb2.GetRiskReportRequest())
    b = next(r for r in report.backends if r.backend_id == "b")
    assert (b.predicted_latency_ms, b.forecast_ms, b.breaches) == (200.0, 350.0, False)
    assert not report.model_proven and report.backends_at_risk == 0
    # The predictor's gate passes the model: the forecast drives b's breaker.
    predictor.proven = True
    store.batches.put([vector("a", 110, 120), vector("b", 110, 200)])
    watch.until(lambda w: at("b", 110)(w) and w.table.model_proven)
    assert (watch.routes["b"].state, watch.routes["b"].basis) == (router_pb2.OPEN, router_pb2.FORECAST)
    assert stub.GetRiskReport(router_pb2.GetRiskReportRequest()).model_proven


def test_feature_store_gone_keeps_deciding_from_the_last_table(rig):
    store, _predictor, stub, watch = rig
    store.batches.put([vector("a", 100, 120), vector("b", 100, 100)])
    watch.until(at("b", 100))
    store.batches.put(None)  # the watch ends, as when the feature store dies
    watch.until(lambda w: not w.table.feature_store_connected)
    decision = stub.Decide(router_pb2.DecideRequest(candidates=["a", "b"]))
    assert decision.backend_id in {"a", "b"}
    assert "feature store unreachable" in decision.reason
    # The router watches again by itself; the fake serves a new stream.
    watch.until(lambda w: w.table.feature_store_connected)


def test_bad_candidates_are_invalid_argument_naming_the_field(rig):
    store, _predictor, stub, watch = rig
    store.batches.put([vector("a", 100, 120)])
    watch.until(at("a", 100))
    with pytest.raises(grpc.RpcError) as err:
        stub.Decide(router_pb2.DecideRequest(candidates=["a", "ghost"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidates[1]" in err.value.details()


def test_risk_report_lists_the_breaching_backend_first(rig):
    store, _predictor, stub, watch = rig
    store.batches.put([vector("a", 100, 120), vector("b", 100, 200)])
    watch.until(at("b", 100))
    report = stub.GetRiskReport(router_pb2.GetRiskReportRequest())
    assert [r.backend_id for r in report.backends] == ["b", "a"]
    assert report.backends_at_risk == 1
    assert report.backends[0].breaches
    assert report.backends[0].predicted_latency_ms == pytest.approx(350)
    assert report.threshold_ms == 300 and report.horizon_s == 300
