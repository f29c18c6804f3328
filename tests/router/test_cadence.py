"""ACE at two reporting intervals, through the real feature store and the
real router on port 0 (no predictor: the breakers run on observed latency,
the reactive path every new fleet starts on): telemetry every 10 s and every
60 s warms a backend after the same 40 s of history, opens its breaker on
the same two high points, and a backend that falls silent while drained is
probed again 300 s of fleet event time after its last point."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, router_pb2_grpc, telemetry_pb2
from services.common.serving import RunningServer
from services.common.timeutil import set_timestamp, to_seconds
from services.feature_store import config as fs_config
from services.feature_store import server as fs_server
from services.router import config as rt_config
from services.router import server as rt_server

T0 = 1_800_000_000.0
LOCAL = ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"]


@dataclass
class Pair:
    store: feature_store_pb2_grpc.FeatureStoreStub
    router: router_pb2_grpc.RouterStub

    def send(self, t: float, **latency_ms: float) -> None:
        """One point per named backend at event time T0 + t; returns once the
        router's table reflects every one of them."""
        points = []
        for backend_id, latency in latency_ms.items():
            p = telemetry_pb2.TelemetryPoint(backend_id=backend_id, load=10, latency_ms=latency, error_rate=0)
            set_timestamp(p.observed_at, T0 + t)
            points.append(p)
        assert self.store.Ingest(feature_store_pb2.IngestRequest(points=points), timeout=5).accepted == len(points)
        deadline = time.monotonic() + 10
        while True:
            rows = self.rows()
            if all(b in rows and to_seconds(rows[b].as_of) == T0 + t for b in latency_ms):
                return
            assert time.monotonic() < deadline, f"the router never applied the points at {t}"
            time.sleep(0.01)

    def rows(self) -> dict[str, router_pb2.BackendRoute]:
        table = self.router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5)
        return {r.backend_id: r for r in table.backends}

    def risks(self) -> dict[str, router_pb2.BackendRisk]:
        report = self.router.GetRiskReport(router_pb2.GetRiskReportRequest(), timeout=5)
        return {r.backend_id: r for r in report.backends}

    def decide(self, n: int) -> list[router_pb2.Decision]:
        return [self.router.Decide(router_pb2.DecideRequest(), timeout=5) for _ in range(n)]


@pytest.fixture
def pair() -> Iterator[Pair]:
    store: RunningServer = fs_server.start(fs_config.load(LOCAL))
    # Default breaker settings: the debounce, warmth and probe bound as shipped.
    # Round robin, where an open breaker drains its backend and a half-open
    # one takes every other turn of its share exactly.
    args = [
        *LOCAL,
        "--feature-store-addr",
        f"127.0.0.1:{store.port}",
        "--predictor-addr",
        "127.0.0.1:1",
        "--share-by-capacity",
        "off",
    ]
    router: RunningServer = rt_server.start(rt_config.load(args))
    with (
        grpc.insecure_channel(f"127.0.0.1:{store.port}") as fs_channel,
        grpc.insecure_channel(f"127.0.0.1:{router.port}") as rt_channel,
    ):
        yield Pair(feature_store_pb2_grpc.FeatureStoreStub(fs_channel), router_pb2_grpc.RouterStub(rt_channel))
    router.stop(0)
    store.stop(0)


@pytest.mark.parametrize("interval_s", [10.0, 60.0])
def test_warmth_opening_and_probing_mean_the_same_at_10_s_and_60_s(pair: Pair, interval_s: float) -> None:
    # Warm once the window covers 40 s: the fifth point at 10 s, the second at 60 s.
    warm_at = {10.0: 5, 60.0: 2}[interval_s]
    t = 0.0
    for k in range(1, warm_at + 1):
        pair.send(t, a=80, b=90)
        rows = pair.rows()
        assert rows["b"].cold is (k < warm_at), f"point {k}"
        assert rows["b"].window_covered_s == pytest.approx(t)
        t += interval_s
    assert rows["b"].basis == router_pb2.OBSERVED_LATENCY and rows["b"].risk_ms == 90

    # One high point does not open b (the 10 s debounce); the second does, at either interval.
    pair.send(t, a=80, b=900)
    assert pair.rows()["b"].state == router_pb2.CLOSED
    opened_at = t + interval_s
    pair.send(opened_at, a=80, b=900)
    assert pair.rows()["b"].state == router_pb2.OPEN
    assert {d.backend_id for d in pair.decide(6)} == {"a"}

    # Drained, b sends nothing; a goes on. Until 300 s of the fleet's event
    # time have passed since b's last point, b stays open and gets nothing.
    t = opened_at
    while t + interval_s < opened_at + 300:
        t += interval_s
        pair.send(t, a=80)
        assert pair.rows()["b"].state == router_pb2.OPEN, f"{t - opened_at:g} s after b's last point"
    assert {d.backend_id for d in pair.decide(6)} == {"a"}
    t += interval_s
    pair.send(t, a=80)
    assert t - opened_at >= 300
    rows, risks = pair.rows(), pair.risks()
    assert rows["b"].state == risks["b"].state == router_pb2.HALF_OPEN
    assert to_seconds(rows["b"].state_since) == T0 + t
    probes = [d for d in pair.decide(8) if d.backend_id == "b"]
    assert len(probes) == 2  # every other turn of its share
    assert {d.breaker_state for d in probes} == {router_pb2.HALF_OPEN}

    # Probed, it serves and reports again, fast: it closes once warm and low
    # for the recovery time (60 s).
    for _ in range(12):
        t += interval_s
        pair.send(t, a=80, b=90)
        if pair.rows()["b"].state == router_pb2.CLOSED:
            break
    rows = pair.rows()
    assert rows["b"].state == router_pb2.CLOSED and not rows["b"].cold
    assert {d.backend_id for d in pair.decide(4)} == {"a", "b"}
