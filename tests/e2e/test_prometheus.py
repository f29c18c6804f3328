"""What an operator's Prometheus sees: Debian's prometheus binary scrapes
the four real services while a spike goes through Ingest, and its query API
shows the decisions, the spiking backend's breaker and risk, and the alert
rule that says so. No model is published, so the breakers run on observed
latency, which makes the spike's figures exact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, router_pb2_grpc, telemetry_pb2
from tests import prometheus
from tests.e2e.conftest import Fleet

pytestmark = pytest.mark.slow  # a real Prometheus or browser: see docs/development.md

JOBS = {
    "feature_store": "ace-feature-store",
    "predictor": "ace-predictor",
    "router": "ace-router",
    "trainer": "ace-trainer",
}
BACKENDS = ("gpu-a", "gpu-b", "gpu-c")
SPIKING = "gpu-c"
DECISIONS = 40


def spike(now: float) -> list[telemetry_pb2.TelemetryPoint]:
    """Twenty points 10 s apart per backend, the last at `now`; gpu-c's
    latency climbs from 100 ms to 1000 ms over its last six."""
    points = []
    for i in range(20):
        for backend in BACKENDS:
            climb = max(0, i - 13) * 150 if backend == SPIKING else 0
            p = telemetry_pb2.TelemetryPoint(backend_id=backend, load=0.4, latency_ms=100.0 + climb, error_rate=0.0)
            p.observed_at.FromMilliseconds(int((now - 10 * (19 - i)) * 1000))
            points.append(p)
    return points


def by_backend(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["labels"]["backend_id"]: r["value"] for r in result}


def test_prometheus_sees_the_spike_the_router_acted_on(fleet: Fleet, tmp_path: Path) -> None:
    targets = {JOBS[name]: s.metrics_port or 0 for name, s in fleet.servers.items()}
    assert all(targets.values())
    with prometheus.running(tmp_path / "prometheus", targets) as prom:
        up = prom.wait_for("up == 1", lambda r: len(r) == len(JOBS))
        assert sorted(r["labels"]["job"] for r in up) == sorted(JOBS.values())
        before = prom.wait_for("sum(ace_router_decisions_total)", lambda r: bool(r))
        assert [r["value"] for r in before] == [0]

        store = feature_store_pb2_grpc.FeatureStoreStub(fleet.channels["feature_store"])
        answer = store.Ingest(feature_store_pb2.IngestRequest(points=spike(time.time())), timeout=10)
        assert answer.accepted == 20 * len(BACKENDS)
        router = router_pb2_grpc.RouterStub(fleet.channels["router"])
        table = router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5)
        deadline = time.monotonic() + 30
        while len(table.backends) < len(BACKENDS) and time.monotonic() < deadline:
            time.sleep(0.1)
            table = router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5)
        decisions = [
            router.Decide(router_pb2.DecideRequest(candidates=list(BACKENDS)), timeout=5) for _ in range(DECISIONS)
        ]
        # gpu-c's share fell: its capacity estimate, capped while it is slow
        # and the others are not, and its open breaker's.
        assert sum(d.backend_id == SPIKING for d in decisions) <= DECISIONS // 10
        observed = sum(d.basis == router_pb2.OBSERVED_LATENCY for d in decisions)
        assert observed == DECISIONS  # every backend is warm, and no model is published

        rose = prom.wait_for("sum(ace_router_decisions_total)", lambda r: bool(r) and r[0]["value"] >= DECISIONS)
        assert [r["value"] for r in rose] == [DECISIONS]
        by_basis = prom.query('sum(ace_router_decisions_total{basis="observed_latency"})')
        assert [r["value"] for r in by_basis] == [observed]

        # Each service is scraped on its own beat: wait for a scrape after the spike.
        opened = {"gpu-a": 0, "gpu-b": 0, "gpu-c": 2}
        state = by_backend(prom.wait_for("ace_router_breaker_state", lambda r: by_backend(r) == opened))
        assert state == opened
        risk = by_backend(prom.query("ace_router_backend_risk_seconds"))
        assert risk == {"gpu-a": 0.1, "gpu-b": 0.1, "gpu-c": 1.0}
        stored = 20 * len(BACKENDS)
        accepted = prom.wait_for(
            "ace_feature_store_points_accepted_total", lambda r: [x["value"] for x in r] == [stored]
        )
        assert [r["value"] for r in accepted] == [stored]

        # The rule sees it too: pending until it has held for its minute.
        alerts = prom.wait_for('ALERTS{alertname="AceBackendForecastToBreach"}', lambda r: bool(r))
        assert [(a["labels"]["backend_id"], a["labels"]["alertstate"]) for a in alerts] == [(SPIKING, "pending")]
