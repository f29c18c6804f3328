"""The benchmark's ACE decides as the router does: the same telemetry goes to
the benchmark's AceRouter and, as feature vectors through a feature store's
watch, to a real router server on port 0; every request the benchmark
places is also asked of the server's Decide, and the two must name the same
backend, turn after turn, while breakers open, half-open and close, and
(with in-flight counts, or with outcomes reported and no counts) while one
backend's reported outcomes fail.

Failure scores fade with each side's own clock (event time in the
benchmark, the server's monotonic clock), so both run with a decay too
long to fade within the test: what is compared is the rule, not two
clocks."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from ace.v1 import feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2, router_pb2_grpc, telemetry_pb2
from bench.foresight import routers
from bench.foresight.routers import EPOCH, AceRouter
from bench.foresight.sim import Telemetry
from services.common.features import SCHEMA_VERSION
from services.common.timeutil import to_seconds, to_timestamp
from services.router import outstanding as pending
from services.router.config import load
from services.router.policy import Settings
from services.router.server import start
from services.router.sync import LATENCY_INDEX
from services.router.table import COUNTED_NOTE
from tests.fakes import FakeFeatureStore, FakePredictor, serve

BACKENDS = 4
TICKS = 40
PICKS_PER_TICK = 12
SETTINGS = Settings(error_decay_s=1e9)
# Backend 0 answers errors from tick 20 to 25.
FAILING = "backend-0"


def forecast(backend_id: str, latency_ms: float) -> float:
    # Backend 2's forecast runs ahead of what it shows, so its breaker opens
    # on the forecast alone.
    return latency_ms * (1.6 if backend_id == "backend-2" else 1.0)


def latencies(k: int) -> list[float]:
    """Backend 1 breaches from tick 10 to 16, backend 2 creeps towards its
    forecast's threshold, backend 3 flickers: every breaker state comes up."""
    b1 = 900.0 if 10 <= k < 16 else 120.0
    b2 = 100.0 + 6.0 * k if k < 30 else 110.0
    b3 = 320.0 if k % 7 == 0 else 140.0
    return [110.0, b1, b2, b3]


class Rig:
    def __init__(self) -> None:
        self.store = FakeFeatureStore()
        self.fs_server, fs_port = serve(
            lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(self.store, s)
        )
        self.pr_server, pr_port = serve(
            lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(FakePredictor(forecast), s)
        )
        deps = ["--feature-store-addr", f"127.0.0.1:{fs_port}", "--predictor-addr", f"127.0.0.1:{pr_port}"]
        cfg = load(["--host", "127.0.0.1", "--port", "0", "--error-decay-s", str(SETTINGS.error_decay_s), *deps])
        self.running = start(cfg)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.running.port}")
        self.stub = router_pb2_grpc.RouterStub(self.channel)
        self.as_of: dict[str, float] = {}
        self.cond = threading.Condition()
        self.watch = self.stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest())
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for message in self.watch:
                with self.cond:
                    self.as_of.update({r.backend_id: to_seconds(r.as_of) for r in message.backends})
                    self.cond.notify_all()
        except grpc.RpcError:
            pass

    def until_applied(self, ids: list[str], at: float) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: all(self.as_of.get(b, 0.0) >= at for b in ids), 10)

    def close(self) -> None:
        self.watch.cancel()
        self.channel.close()
        self.running.stop(1)
        self.fs_server.stop(0)
        self.pr_server.stop(0)


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def bench_router(load_aware: bool, reports: bool = False) -> AceRouter:
    router = AceRouter("ACE", BACKENDS, SETTINGS, None, load_aware=load_aware, reports=reports)

    class Model:
        def score(self, rows: list[tuple[str, list[float]]]) -> np.ndarray:
            # Forecasts are asked for the warm backends, in backend order.
            warm = [b for b in range(BACKENDS) if not router.is_cold(b)]
            return np.asarray([forecast(router.ids[b], v[LATENCY_INDEX]) for b, (_, v) in zip(warm, rows, strict=True)])

    router.model = Model()  # type: ignore[assignment]
    return router


@pytest.mark.parametrize(
    ("load_aware", "reports"),
    [(False, False), (True, False), (False, True)],
    ids=["rotation", "in-flight given", "outcomes reported"],
)
def test_the_benchmark_and_the_router_decide_alike(
    rig: Rig, load_aware: bool, reports: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outcomes reach the benchmark's table before its next pick, as the
    # server's arrive before the next Decide. Ageing and lag are measured in
    # each side's own clock (the picks of a tick share one event time, and
    # its outcomes come a tick later; the server's clock is the wall's, its
    # latencies the benchmark's), so neither switches counts off here.
    monkeypatch.setattr(routers, "REPORT_DELAY_S", 0.0)
    monkeypatch.setattr(pending, "MAX_AGE_S", math.inf)
    monkeypatch.setattr(pending, "MAX_LAG_SHARE", math.inf)
    monkeypatch.setattr(pending, "MAX_EARLY_SHARE", math.inf)
    router = bench_router(load_aware, reports)
    rng = random.Random(7)
    outstanding: dict[str, list[str]] = {backend_id: [] for backend_id in router.ids}
    reasons: list[str] = []
    states_seen: set[str] = set()
    compared = 0
    for k in range(1, TICKS + 1):
        lat = latencies(k)
        telemetry = Telemetry(
            at_s=10.0 * k,
            load=np.full(BACKENDS, 15.0),
            latency_ms=np.asarray(lat),
            error_rate=np.zeros(BACKENDS),
            utilisation=np.zeros(BACKENDS),
            answers=np.zeros(BACKENDS),
        )
        updates = router.updates(telemetry)
        router.table.apply(updates)
        rig.store.batches.put(
            [
                telemetry_pb2.FeatureVector(
                    backend_id=u.backend_id,
                    schema_version=SCHEMA_VERSION,
                    values=np.asarray(u.features).tolist(),
                    as_of=to_timestamp(u.as_of),
                    points_in_window=u.points,
                    window_covered_s=u.covered_s,
                )
                for u in updates
            ]
        )
        rig.until_applied(router.ids, EPOCH + telemetry.at_s)
        states_seen.update(e.breaker.state.value for e in router.table.entries())
        for _ in range(PICKS_PER_TICK):
            in_flight = dict(router.in_flight) if load_aware else {}
            answer = rig.stub.Decide(
                router_pb2.DecideRequest(request_id=f"{k}", candidates=router.ids, in_flight=in_flight)
            )
            assert router.ids[router.pick(10.0 * k)] == answer.backend_id, f"tick {k}: {answer.reason}"
            compared += 1
            reasons.append(answer.reason)
            if not (load_aware or reports):
                continue
            outstanding[answer.backend_id].append(answer.decision_id)
            # Some requests finish between picks, so in-flight counts move;
            # each outcome goes to both, failed on the failing backend.
            for b, backend_id in enumerate(router.ids):
                if outstanding[backend_id] and rng.random() < 0.4:
                    failed = backend_id == FAILING and 20 <= k < 26
                    router.done(b, 10.0 * k, 50.0, failed, 50.0, 0)
                    decision_id = outstanding[backend_id].pop(0)
                    outcome = router_pb2.Outcome(decision_id=decision_id, latency_ms=50.0, failed=failed)
                    receipt = rig.stub.ReportOutcomes(router_pb2.ReportOutcomesRequest(outcomes=[outcome]))
                    assert receipt.receipts[0].status == router_pb2.ACCEPTED
    assert compared == TICKS * PICKS_PER_TICK
    # The comparison covered every breaker state, not only closed ones.
    assert states_seen == {"CLOSED", "OPEN", "HALF_OPEN"}
    if load_aware or reports:
        # The failures moved decisions, and the answers said why.
        assert any(r.startswith(f"{FAILING} has been failing") for r in reasons)
    if reports:
        # Once enough outcomes had come, the router counted on its own.
        assert sum(COUNTED_NOTE in r for r in reasons) > TICKS * PICKS_PER_TICK / 3
