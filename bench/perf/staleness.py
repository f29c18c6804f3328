"""How old a watching client's table is: from the Ingest call that carries
a point to the moment a RouterClient's table shows the backend at that
point's event time. The point travels the whole path: feature store window
and features, WatchFeatures, the router's sync and its batched Predict, the
breaker, WatchRoutingTable, and the client's copy."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import grpc

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, telemetry_pb2
from bench.perf.fixtures import Forest, backend_name
from bench.perf.fleet import fleet
from bench.perf.sizes import Sizes
from bench.perf.timing import Row, pct, us
from services.common import synthetic
from services.common.timeutil import to_timestamp
from services.router.client import RouterClient
from services.router.policy import Basis
from services.trainer.publish import publish

WARM_POINTS = 6  # 50 s of event time, past the router's warm_after_s (40 s), so every backend is forecast
STEP_S = 10  # event time between a backend's points
TICK_S = 0.01  # the driver sends a batch this often


class Lag:
    """Send times by (backend, event second), and the lag of each one the
    client's table shows. A point overtaken by the backend's next one before
    the client saw it is never shown; it counts as superseded."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, int], float] = {}
        self.lags: list[float] = []
        self.cond = threading.Condition()

    def on_update(self, message: router_pb2.RoutingTable) -> None:
        now = time.monotonic()
        with self.cond:
            for route in message.backends:
                sent = self.sent.pop((route.backend_id, route.as_of.seconds), None)
                if sent is not None:
                    self.lags.append(now - sent)
            self.cond.notify_all()


def run(sizes: Sizes, forest: Forest) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="ace-bench-") as tmp, fleet(Path(tmp), sizes.processes) as addrs:
        with grpc.insecure_channel(addrs["predictor"]) as channel:
            outcome = publish(channel, forest.metadata("bench-staleness"), forest.model.onnx_bytes)
            if not outcome.published:
                raise RuntimeError(f"publishing the bench model failed: {outcome.error}")
        lag = Lag()
        with (
            grpc.insecure_channel(addrs["feature_store"]) as fs_channel,
            grpc.insecure_channel(addrs["router"]) as rt_channel,
            RouterClient(rt_channel, on_update=lag.on_update) as client,
        ):
            store = feature_store_pb2_grpc.FeatureStoreStub(fs_channel)
            names = [backend_name(i) for i in range(sizes.staleness_backends)]
            _warm_up(store, client, names)
            sent = _drive(store, lag, names, sizes)
            with lag.cond:
                lag.cond.wait_for(lambda: not lag.sent, timeout=5)
                lags, unseen = list(lag.lags), len(lag.sent)
    n = sizes.staleness_backends
    p50, p99 = pct(lags, 50), pct(lags, 99)
    return [
        Row(
            f"staleness: `Ingest` call → `RouterClient` table, {n:,} backends each reporting every "
            f"{sizes.report_interval_s:g} s ({len(lags):,} points seen, {unseen} superseded, of {sent:,})",
            f"p50 {us(p50)}, p99 {us(p99)}",
            "none (absolute)",
            "—",
            "p99 ≤ 50 ms",
            p99 <= 0.050,
        )
    ]


def _point(backend_id: str, step: int, latency_ms: float) -> telemetry_pb2.TelemetryPoint:
    return telemetry_pb2.TelemetryPoint(
        backend_id=backend_id,
        observed_at=to_timestamp(synthetic.EPOCH + step * STEP_S),
        load=50.0,
        latency_ms=latency_ms,
        error_rate=0.0,
    )


WITH_FORECAST = (Basis.FORECAST, Basis.OBSERVED_OVER_FORECAST, Basis.MODEL_UNPROVEN)


def _warm_up(store: feature_store_pb2_grpc.FeatureStoreStub, client: RouterClient, names: list[str]) -> None:
    for step in range(WARM_POINTS):
        store.Ingest(feature_store_pb2.IngestRequest(points=[_point(b, step, 100.0) for b in names]))

    def warm(c: RouterClient) -> bool:
        routes = [c.candidate(b) for b in names]
        # A forecast in hand: driving the breaker, under the observed latency
        # the breaker then runs on, or in shadow until proven.
        return c.connected and all(r is not None and r.basis in WITH_FORECAST for r in routes)

    if not client.wait(warm, timeout_s=60):
        raise RuntimeError("the router never forecast the warm-up backends (is the model active?)")


def _drive(store: feature_store_pb2_grpc.FeatureStoreStub, lag: Lag, names: list[str], sizes: Sizes) -> int:
    """Each backend reports once per interval, the fleet spread evenly over
    it in ticks; returns the number of points sent."""
    ticks = max(1, round(sizes.report_interval_s / TICK_S))
    groups = [names[i::ticks] for i in range(ticks)]
    rounds = max(1, round(sizes.staleness_s / sizes.report_interval_s))
    sent = 0
    next_at = time.monotonic()
    for r in range(rounds):
        step = WARM_POINTS + r
        for i, group in enumerate(groups):
            if not group:
                continue
            request = feature_store_pb2.IngestRequest(points=[_point(b, step, 100.0 + (i + r) % 17) for b in group])
            next_at += TICK_S
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load, not waiting for a result
            now = time.monotonic()
            with lag.cond:
                for b in group:
                    lag.sent[(b, int(synthetic.EPOCH) + step * STEP_S)] = now
            store.Ingest(request)
            sent += len(group)
    return sent
