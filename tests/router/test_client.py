"""RouterClient against a real router on port 0 (fed by fake dependencies
that are real servers too): local picks equal Decide's answers, a broken
stream falls back to round robin over the last table, and the client
reconnects by itself."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from ace.v1 import feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2, router_pb2_grpc
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.serving import RunningServer
from services.router import wire
from services.router.client import DISCONNECTED_REASON, NO_TABLE_REASON, RouterClient
from services.router.config import load
from services.router.policy import OBSERVED_NOTE, OVER_FORECAST_NOTE, STALE_NOTE, Action, Basis, Settings, State
from services.router.rotation import Rotation
from services.router.server import start
from tests.fakes import FakeFeatureStore, FakePredictor, serve, vector

# Fast channel reconnects, so a restarted router is found within the test's patience.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 200)]


class Store(FakeFeatureStore):
    """Counts its open watch streams, so a test can wait until a stopped
    router's stream is gone before it feeds the new one."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0
        self.cond = threading.Condition()

    def WatchFeatures(self, request, context):
        with self.cond:
            self.streams += 1
        try:
            yield from super().WatchFeatures(request, context)
        finally:
            with self.cond:
                self.streams -= 1
                self.cond.notify_all()

    def wait_for_one_stream(self) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.streams == 1, timeout=10)


@dataclass
class Rig:
    store: Store
    args: list[str]
    router: RunningServer

    def restart_router(self) -> None:
        """A new router process-equivalent on the same port, with an empty table."""
        self.router = start(load([*self.args, "--port", str(self.router.port)]))


@pytest.fixture
def rig() -> Iterator[Rig]:
    store = Store()
    # The forecast is the observed latency, plus 300 ms for backend "b": b's breaker opens;
    # and 100 ms less for backend "d", whose breaker then runs on its observed latency.
    predictor = FakePredictor(lambda b, latency: latency + {"b": 300.0, "d": -100.0}.get(b, 0.0))
    fs_server, fs_port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    pr_server, pr_port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
    args = [
        "--host",
        "127.0.0.1",
        "--feature-store-addr",
        f"127.0.0.1:{fs_port}",
        "--predictor-addr",
        f"127.0.0.1:{pr_port}",
        "--threshold-ms",
        "250",
        "--warm-after-s",
        "30",
        "--open-penalty",
        "3",
        "--error-penalty",
        "6",
        # The spikes here are single updates; test_debounce.py runs the default.
        "--open-after-s",
        "0",
        # The weighted rotation, with open breakers drained.
        "--open-share",
        "0",
        # Long enough that no failure score fades within a test: the client's
        # and the router's clocks are not the same.
        "--error-decay-s",
        "3600",
    ]
    rig = Rig(store, args, start(load([*args, "--port", "0"])))
    yield rig
    rig.router.stop(0)
    fs_server.stop(0)
    pr_server.stop(0)


@pytest.fixture
def channel(rig: Rig) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{rig.router.port}", options=CHANNEL_OPTIONS) as channel:
        yield channel


def knows(*backends: str):
    return lambda c: c.connected and set(backends) <= set(c.backends())


def test_local_picks_are_the_routers_decisions(rig, channel):
    rig.store.batches.put([vector("a", 100, 120), vector("b", 100, 120), vector("c", 100, 90, points=2)])
    stub = router_pb2_grpc.RouterStub(channel)
    with RouterClient(channel) as client:
        assert client.wait(knows("a", "b", "c"), timeout_s=10)
        assert client.table.threshold_ms == 250 and client.table.warm_after_s == 30
        picks = [client.pick() for _ in range(6)]
        named = [client.pick(["c", "a"])]
        decisions = [stub.Decide(router_pb2.DecideRequest()) for _ in range(6)]
        decisions.append(stub.Decide(router_pb2.DecideRequest(candidates=["c", "a"])))
        rig.store.batches.put([vector("d", 110, 230)])
        assert client.wait(knows("d"), timeout_s=10)
        named.append(client.pick(["d"]))
        decisions.append(stub.Decide(router_pb2.DecideRequest(candidates=["d"])))
    # d's 230 ms is over the lower mark (212.5 ms) and above its 130 ms forecast: the observed floor.
    assert decisions[-1].basis == router_pb2.OBSERVED_OVER_FORECAST
    assert decisions[-1].predicted_latency_ms == 230 and OVER_FORECAST_NOTE in named[-1].reason
    for pick, decision in zip([*picks, *named], decisions, strict=True):
        assert pick.backend_id == decision.backend_id
        assert pick.action.value == router_pb2.Action.Name(decision.action)
        assert pick.reason == decision.reason
        assert list(pick.fallbacks) == list(decision.fallbacks)
        assert list(pick.skipped) == list(decision.skipped)
    assert "b" not in {p.backend_id for p in picks}  # its breaker is open
    assert any(p.action is Action.ROUND_ROBIN and "cold (its 2 points cover 10 of 30 s)" in p.reason for p in picks)
    assert any(p.action is Action.PRIMARY and "by weighted rotation" in p.reason for p in picks)


def test_picks_with_in_flight_counts_are_the_routers_least_loaded_decisions(rig, channel):
    rig.store.batches.put([vector("a", 100, 120), vector("b", 100, 120), vector("c", 100, 150)])
    # b's breaker is open; with --open-penalty 3 it takes a request only once
    # a and c both have 3 more in flight than it.
    loads = [{"a": 2, "c": 1}, {"a": 1, "c": 1}, {"a": 4, "b": 0, "c": 4}, {"a": 0, "b": 2, "c": 1}]
    with RouterClient(channel) as client:
        assert client.wait(knows("a", "b", "c"), timeout_s=10)
        assert client.table.open_penalty == 3 and client.table.rate_aware  # the default, carried to the client
        picks = [client.pick(in_flight=load) for load in loads]
    stub = router_pb2_grpc.RouterStub(channel)
    decisions = [stub.Decide(router_pb2.DecideRequest(in_flight=load)) for load in loads]
    for pick, decision in zip(picks, decisions, strict=True):
        assert (pick.backend_id, pick.reason, list(pick.skipped)) == (
            decision.backend_id,
            decision.reason,
            list(decision.skipped),
        )
    # Ties go to the lower forecast: a (120 ms) before c (150 ms).
    assert [p.backend_id for p in picks] == ["c", "a", "b", "a"]
    assert [p.action for p in picks] == [Action.REROUTE, Action.REROUTE, Action.LAST_RESORT, Action.PRIMARY]


def test_partial_updates_reach_the_table(rig, channel):
    rig.store.batches.put([vector("a", 100, 120), vector("b", 100, 120)])
    with RouterClient(channel) as client:
        assert client.wait(knows("a", "b"), timeout_s=10)
        # Now a's forecast crosses the threshold too: every breaker is open.
        rig.store.batches.put([vector("a", 110, 400)])
        assert client.wait(lambda c: c.pick(["a", "b"]).action is Action.LAST_RESORT, timeout_s=10)
        assert client.pick(["a", "b"]).backend_id == "a"  # the lower forecast of the two


def test_bad_candidates_are_refused_as_the_router_refuses_them(rig, channel):
    rig.store.batches.put([vector("a", 100, 120)])
    with RouterClient(channel) as client:
        assert client.wait(knows("a"), timeout_s=10)
        with pytest.raises(InvalidInput, match=r"candidates\[1\]: unknown backend 'ghost'"):
            client.pick(["a", "ghost"])
        with pytest.raises(InvalidInput, match="once"):
            client.pick(["a", "a"])


def test_before_any_table_it_rotates_over_the_names_given(rig):
    # Nothing listens on this channel's target once the router is stopped.
    rig.router.stop(0)
    with (
        grpc.insecure_channel(f"127.0.0.1:{rig.router.port}") as channel,
        RouterClient(channel, max_backoff_s=0.1) as client,
    ):
        picks = [client.pick(["x", "y"]) for _ in range(3)]
        assert [p.backend_id for p in picks] == ["x", "y", "x"]
        assert {p.reason for p in picks} == {NO_TABLE_REASON}
        with pytest.raises(FailedPrecondition):
            client.pick()
    rig.restart_router()  # so that the fixture has a router to stop


def test_broken_stream_falls_back_to_round_robin_then_reconnects(rig, channel):
    rig.store.batches.put([vector("a", 100, 120), vector("b", 100, 120)])
    with RouterClient(channel, min_backoff_s=0.02, max_backoff_s=0.2) as client:
        assert client.wait(knows("a", "b"), timeout_s=10)
        assert {client.pick().backend_id for _ in range(4)} == {"a"}  # b is open

        rig.router.stop(0)
        assert client.wait(lambda c: not c.connected, timeout_s=10)
        picks = [client.pick() for _ in range(4)]
        # Breakers are no longer trusted: plain rotation over the last known table.
        names = [p.backend_id for p in picks]
        assert sorted(names[:2]) == ["a", "b"] and names[2:] == names[:2]
        assert {p.action for p in picks} == {Action.ROUND_ROBIN}
        assert {p.reason for p in picks} == {DISCONNECTED_REASON}
        assert client.pick(["b"]).backend_id == "b"

        # Read before the restart: the client retries every 0.02-0.2 s, so by
        # the time the new router has started it may already have reconnected.
        opened = client.streams_opened
        rig.restart_router()
        assert client.wait(lambda c: c.connected and c.table.feature_store_connected, timeout_s=10)
        assert client.streams_opened > opened
        # The new router learns the backends again from the feature store.
        assert rig.store.wait_for_one_stream()
        rig.store.batches.put([vector("a", 200, 120), vector("b", 200, 120)])
        assert client.wait(knows("a", "b"), timeout_s=10)
        assert client.wait(lambda c: {c.pick().backend_id for _ in range(4)} == {"a"}, timeout_s=10)
        route = client.candidate("b")
        assert route is not None and route.state is State.OPEN and route.basis is Basis.FORECAST


class OneTable(router_pb2_grpc.RouterServicer):
    """Streams one full table, then holds the stream open."""

    def __init__(self, table: router_pb2.RoutingTable) -> None:
        self.table = table

    def register(self, server: grpc.Server) -> None:
        router_pb2_grpc.add_RouterServicer_to_server(self, server)

    def WatchRoutingTable(self, request, context):
        yield self.table
        while context.is_active():
            time.sleep(0.01)


def random_table(
    rng: random.Random, n: int, half_open: bool, open_share: float | None = None
) -> router_pb2.RoutingTable:
    """With `open_share`, a table for the weighted rotation: warm backends
    carry capacity estimates."""
    states = [router_pb2.CLOSED, router_pb2.OPEN] + ([router_pb2.HALF_OPEN] if half_open else [])
    table = router_pb2.RoutingTable(threshold_ms=250, horizon_s=300, warm_after_s=30, feature_store_connected=True)
    if open_share is not None:
        table.share_by_capacity, table.open_share = True, open_share
        table.capacity_deadband = Settings.capacity_deadband
    for i in range(n):
        cold = rng.random() < 0.2
        table.backends.add(
            backend_id=f"b{i}",
            state=rng.choice(states),
            cold=cold,
            points_in_window=2 if cold else 30,
            window_covered_s=10 if cold else 290,
            basis=router_pb2.COLD_START if cold else router_pb2.FORECAST,
            risk_ms=rng.uniform(50, 400),
        )
        if open_share is not None and not cold:
            table.backends[-1].capacity_rps = rng.uniform(1, 40)
    return table


@pytest.mark.parametrize(
    ("half_open", "open_share"), [(False, None), (True, None), (False, 0.0), (True, 0.0), (True, 0.5), (True, 1.0)]
)
def test_picks_equal_the_rotations_over_many_turns(half_open, open_share):
    """Cycle-memoized picks (and rotation picks, with a half-open breaker in
    round robin) answer exactly as the rotation the router decides with,
    turn by turn, in round robin and in the weighted rotation alike."""
    rng = random.Random(7)
    weighted = open_share is not None
    settings = Settings(
        threshold_ms=250,
        horizon_s=300,
        warm_after_s=30,
        open_after_s=0,
        share_by_capacity=weighted,
        open_share=open_share if weighted else 0.0,
    )
    for run in range(6):
        table = random_table(rng, 8, half_open, open_share)
        reference = Rotation(settings)
        reference.replace_all([wire.candidate(r) for r in table.backends])
        # One candidate list per run (the empty one: everyone): the client's
        # memoized picks count turns apart from its rotation's, so a mix of
        # lists that go either way would not keep in step with one reference.
        names = tuple(rng.sample([r.backend_id for r in table.backends], rng.randint(1, 8))) if run % 2 else ()
        server, port = serve(OneTable(table).register)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, RouterClient(channel) as client:
                assert client.wait(lambda c: c.connected, timeout_s=10)
                for _ in range(200):
                    assert client.pick(names) == reference.pick(names)[0]
        finally:
            server.stop(0)


def test_a_table_the_feature_store_no_longer_feeds_is_named_in_local_picks_as_in_decide():
    table = router_pb2.RoutingTable(threshold_ms=250, warm_after_s=30, feature_store_connected=False)
    table.backends.add(backend_id="a", state=router_pb2.CLOSED, points_in_window=30, basis=router_pb2.OBSERVED_LATENCY)
    table.backends[0].risk_ms = 120
    server, port = serve(OneTable(table).register)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, RouterClient(channel) as client:
            assert client.wait(lambda c: c.connected, timeout_s=10)
            assert (
                client.pick().reason == f"a next in rotation, observed 120 ms below 250 ms{OBSERVED_NOTE}{STALE_NOTE}"
            )
    finally:
        server.stop(0)


def test_reported_failures_weigh_alike_in_local_picks_and_in_decide(rig, channel):
    rig.store.batches.put([vector("a", 100, 120), vector("c", 100, 150)])
    stub = router_pb2_grpc.RouterStub(channel)
    with RouterClient(channel) as client:
        assert client.wait(knows("a", "c"), timeout_s=10)
        assert (client.table.error_penalty, client.table.error_decay_s) == (6, 3600)
        # Four failures of a: to the router through ReportOutcomes, to the client through report().
        for _ in range(4):
            decided = stub.Decide(router_pb2.DecideRequest(candidates=["a"]))
            stub.ReportOutcomes(
                router_pb2.ReportOutcomesRequest(
                    outcomes=[router_pb2.Outcome(decision_id=decided.decision_id, failed=True)]
                )
            )
            client.report("a", failed=True)
        loads = [{"a": 0, "c": 3}, {"a": 0, "c": 5}]
        picks = [client.pick(["a", "c"], in_flight=load) for load in loads]
    decisions = [stub.Decide(router_pb2.DecideRequest(candidates=["a", "c"], in_flight=load)) for load in loads]
    # a counts 6 x 0.68 = 4.1 more than its 0: c with 3 wins, c with 5 does not.
    assert [p.backend_id for p in picks] == [d.backend_id for d in decisions] == ["c", "a"]
    assert picks[0].reason == decisions[0].reason
    assert decisions[0].reason.startswith("a has been failing: it counts 4.1 more requests in flight")
