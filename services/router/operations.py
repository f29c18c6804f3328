"""What the router's metrics port serves: /metrics and the risk board at /
(and /board). Wired here so the servicer stays as it is: decisions are
counted from Decide's answers, everything else is read from the table and
the transition log when Prometheus or a browser asks."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common.metrics import MetricsSetup, Page
from services.router import board, risk
from services.router.metrics import DecisionMetrics, RouterCollector
from services.router.table import RoutingTable
from services.router.transitions import TransitionLog

ROLE_NAMES = {predictor_pb2.ACTIVE: "active", predictor_pb2.CANDIDATE: "candidate", predictor_pb2.PREVIOUS: "previous"}


def model_scores(predictor: grpc.Channel, timeout_s: float) -> Callable[[], list[board.VersionScore] | None]:
    """Asks the predictor for its versions' measured error; None when it
    does not answer in time, so a slow predictor slows the board by at most
    timeout_s."""
    stub = predictor_pb2_grpc.PredictorStub(predictor)

    def ask() -> list[board.VersionScore] | None:
        try:
            health = stub.GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return None
        return [
            board.VersionScore(v.version, ROLE_NAMES.get(v.role, "unknown"), v.labels, v.mae_ms, v.log_mae)
            for v in health.versions
        ]

    return ask


def board_page(
    table: RoutingTable,
    transitions: TransitionLog,
    scores: Callable[[], list[board.VersionScore] | None],
    clock: Callable[[], float] = time.time,
) -> Page:
    def page() -> tuple[str, bytes]:
        entries = table.entries()
        model = table.model
        view = board.Board(
            risks=risk.report(entries, model, table.settings),
            since={e.backend_id: e.breaker.since for e in entries},
            leads={e.backend_id: lead for e in entries if (lead := transitions.lead(e.backend_id)) is not None},
            transitions=transitions.recent(),
            settings=table.settings,
            horizon_s=model.horizon_s or table.settings.horizon_s,
            as_of=table.as_of,
            model_version=model.version if table.predictor_available else "",
            predictor_available=table.predictor_available,
            feature_store_connected=table.feature_store_connected,
            scores=scores(),
            rendered_at=clock(),
            model_proven=table.model_proven,
            trust_reason=table.trust_reason,
        )
        return "text/html; charset=utf-8", board.render(view)

    return page


def setup(
    port: int, table: RoutingTable, transitions: TransitionLog, scores: Callable[[], list[board.VersionScore] | None]
) -> MetricsSetup:
    metrics = MetricsSetup(port)
    decisions = DecisionMetrics(metrics.registry)
    metrics.observers = decisions.observers()
    metrics.registry.register(RouterCollector(table, transitions))
    page = board_page(table, transitions, scores)
    metrics.pages = {"/": page, "/board": page}
    return metrics
