"""Outcomes from decision to training, with real servers on port 0: the
router issues decision ids, takes latency and (later) quality reports for
them, forwards what it accepts to the feature store, and a training on the
feature store's history is weighted by those quality labels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, router_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.common import admin, synthetic
from services.common.points import to_message
from services.common.serving import RunningServer
from services.common.telemetry import Point
from services.common.timeutil import to_seconds
from services.feature_store import config as fs_config
from services.feature_store import server as fs_server
from services.router import config as rt_config
from services.router import server as rt_server
from services.trainer import config as tr_config
from services.trainer import server as tr_server

pytestmark = pytest.mark.slow

STEP_S = 30.0
POOR = "backend-00"  # its requests are served badly: quality 0.2


@dataclass
class Rig:
    store: feature_store_pb2_grpc.FeatureStoreStub
    router: router_pb2_grpc.RouterStub
    trainer: trainer_pb2_grpc.TrainerStub
    admin: tuple[tuple[str, str], ...]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    local = ["--host", "127.0.0.1", "--port", "0"]
    token_file = tmp_path / "admin-token"
    admin.write_token(token_file)
    servers: list[RunningServer] = []
    channels: list[grpc.Channel] = []
    try:
        servers.append(fs_server.start(fs_config.load([*local, "--history-dir", str(tmp_path / "history")])))
        fs_addr = f"127.0.0.1:{servers[0].port}"
        # No predictor listens there: the router decides on observed latency.
        nowhere = "127.0.0.1:1"
        servers.append(
            rt_server.start(
                rt_config.load(
                    [*local, "--feature-store-addr", fs_addr, "--predictor-addr", nowhere, "--outcome-flush-s", "0.1"]
                )
            )
        )
        servers.append(
            tr_server.start(
                tr_config.load(
                    [
                        *local,
                        "--admin-token-file",
                        str(token_file),
                        "--predictor-addr",
                        nowhere,
                        "--feature-store-addr",
                        fs_addr,
                        "--quality-weight",
                        "2",
                    ]
                )
            )
        )
        channels = [grpc.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
        yield Rig(
            feature_store_pb2_grpc.FeatureStoreStub(channels[0]),
            router_pb2_grpc.RouterStub(channels[1]),
            trainer_pb2_grpc.TrainerStub(channels[2]),
            admin.client_metadata(str(token_file)),
        )
    finally:
        for channel in channels:
            channel.close()
        for running in reversed(servers):
            running.stop(0)


def ingest(rig: Rig, points: list[Point]) -> None:
    for i in range(0, len(points), 10_000):
        batch = points[i : i + 10_000]
        response = rig.store.Ingest(feature_store_pb2.IngestRequest(points=[to_message(p) for p in batch]), timeout=10)
        assert response.accepted == len(batch)


def router_at(rig: Rig, t: float, backends: set[str]) -> None:
    """Waits until the router's table holds telemetry up to t for every backend."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        table = rig.router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5)
        if {r.backend_id for r in table.backends if to_seconds(r.as_of) >= t} >= backends:
            return
        time.sleep(0.01)
    raise AssertionError(f"the router never saw telemetry up to {t}")


def outcomes_stored(rig: Rig) -> tuple[int, int, float]:
    request = feature_store_pb2.ReadHistoryRequest(include_outcomes=True, skip_points=True, backend_ids=[POOR])
    summaries = [o for batch in rig.store.ReadHistory(request, timeout=10) for o in batch.outcomes]
    return (
        sum(o.latency_count for o in summaries),
        sum(o.quality_count for o in summaries),
        sum(o.quality_sum for o in summaries),
    )


def test_outcomes_reach_the_training_as_quality_labels(rig: Rig):
    history = synthetic.random_history(5, n_backends=3, duration_s=5400.0)
    backends = {b.backend_id for b in history.backends}
    start = synthetic.EPOCH + 3600.0
    ingest(rig, [p for p in history.points if p.observed_at <= start])

    # Live: telemetry every 30 s of event time, one decision per backend.
    decisions: list[router_pb2.Decision] = []
    t = start
    while t < synthetic.EPOCH + 5400.0:
        t += STEP_S
        ingest(rig, [p for p in history.points if t - STEP_S < p.observed_at <= t])
        router_at(rig, t, backends)
        for b in sorted(backends):
            decisions.append(rig.router.Decide(router_pb2.DecideRequest(candidates=[b]), timeout=5))
    assert len({d.decision_id for d in decisions}) == len(decisions)
    poor = [d for d in decisions if d.backend_id == POOR]

    # Latency now, newest first (out of order), with a retry and an id the router never issued.
    instance = decisions[0].decision_id.rpartition("-")[0]
    latency = [router_pb2.Outcome(decision_id=d.decision_id, latency_ms=100.0) for d in reversed(decisions)]
    response = rig.router.ReportOutcomes(
        router_pb2.ReportOutcomesRequest(
            outcomes=[*latency, latency[0], router_pb2.Outcome(decision_id=f"{instance}-99999", latency_ms=1.0)]
        ),
        timeout=10,
    )
    statuses = [r.status for r in response.receipts]
    assert statuses == [router_pb2.ACCEPTED] * len(decisions) + [router_pb2.DUPLICATE, router_pb2.REJECTED]
    assert response.receipts[-1].reason.startswith(f"outcomes[{len(decisions) + 1}].decision_id:")

    # Quality later, in a report of its own.
    quality = [
        router_pb2.Outcome(decision_id=d.decision_id, quality=0.2 if d.backend_id == POOR else 0.9) for d in decisions
    ]
    response = rig.router.ReportOutcomes(router_pb2.ReportOutcomesRequest(outcomes=quality), timeout=10)
    assert {r.status for r in response.receipts} == {router_pb2.ACCEPTED}

    # The router forwards them; ReadHistory returns them.
    deadline = time.monotonic() + 10
    while outcomes_stored(rig)[:2] != (len(poor), len(poor)) and time.monotonic() < deadline:
        time.sleep(0.05)
    latency_count, quality_count, quality_sum = outcomes_stored(rig)
    assert (latency_count, quality_count) == (len(poor), len(poor))
    assert quality_sum == pytest.approx(0.2 * len(poor))

    # A training on the feature store's history uses them.
    request = trainer_pb2.TrainRequest(
        feature_store=trainer_pb2.FeatureStoreSource(), n_estimators=5, max_depth=4, publish=False
    )
    steps = {p.stage: p.message for p in rig.trainer.Train(request, timeout=120, metadata=rig.admin)}
    assert "rows weighted up by quality labels" in steps[trainer_pb2.FEATURES], steps[trainer_pb2.FEATURES]
    weighted = int(steps[trainer_pb2.FEATURES].split("; ")[-1].split()[0])
    assert weighted > 0
