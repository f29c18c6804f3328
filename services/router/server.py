"""The Router servicer: converts between protobuf and the table's plain
values. Starting it also starts the sync loop that feeds the table and the
forwarder that sends accepted outcomes to the feature store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import grpc

from ace.v1 import router_pb2, router_pb2_grpc
from services.common import tls
from services.common.config import METRICS_OFF
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.features import MIN_POINTS
from services.common.serving import RunningServer, start_server
from services.common.slots import StreamSlots
from services.common.timeutil import set_timestamp
from services.router import explain, operations, risk
from services.router.answers import Answers
from services.router.config import RouterConfig
from services.router.forward import OutcomeForwarder
from services.router.outcomes import DecisionLog, Status
from services.router.policy import Basis, Settings
from services.router.policy_shadow import PolicyShadow, compare
from services.router.summaries import Report, Summaries, report_all
from services.router.sync import TableSync
from services.router.table import STATUS_KEY, Entry, RoutingTable
from services.router.transitions import TransitionLog
from services.router.wire import BASIS, STATE

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name
WATCH_POLL_S = 0.5
# Router requests name a backend or two; 1 MiB refuses nonsense early.
MAX_RECEIVE_BYTES = 1024 * 1024
# Threads for unary calls on top of the watch stream slots, so watchers can
# never starve Decide.
UNARY_WORKERS = 16
MAX_OUTCOMES = 10_000
OUTCOME_STATUS = {
    Status.ACCEPTED: router_pb2.ACCEPTED,
    Status.DUPLICATE: router_pb2.DUPLICATE,
    Status.REJECTED: router_pb2.REJECTED,
}
# The policy shadow stands a request to the alternative's backend decided
# within this many seconds in for the request that was never sent there.
SHADOW_MATCH_S = 5.0


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(
        self,
        table: RoutingTable,
        settings: Settings,
        *,
        log: DecisionLog | None = None,
        shadow: PolicyShadow | None = None,
        summaries: Summaries | None = None,
        max_streams: int = 32,
    ) -> None:
        self._table = table
        # The table's own settings: the live policy the answers describe.
        self._settings = settings
        # Where outcomes are joined to decisions; None refuses ReportOutcomes.
        self._log = log
        # Compared by GetPolicyShadow; None when the router runs none.
        self._shadow = shadow
        # Where accepted outcomes wait for the forwarder; a router started
        # by start() always has one, a bare servicer keeps them to itself.
        self._summaries = summaries if summaries is not None else Summaries()
        self._streams = StreamSlots(max_streams)
        self._answers = Answers()

    def Decide(self, request: router_pb2.DecideRequest, context: grpc.ServicerContext) -> router_pb2.Decision:
        # A list, read once: the decision walks the names twice (lookup and
        # uniqueness), and each read of a protobuf repeated field makes a new str.
        decided = self._table.decide(list(request.candidates), request.in_flight or None)
        return self._answers.answer(request.request_id, decided, repeats=not decided.load_aware)

    def GetRoutingTable(
        self, request: router_pb2.GetRoutingTableRequest, context: grpc.ServicerContext
    ) -> router_pb2.RoutingTable:
        return self._message(self._table.entries(), partial=False)

    def WatchRoutingTable(
        self, request: router_pb2.WatchRoutingTableRequest, context: grpc.ServicerContext
    ) -> Iterator[router_pb2.RoutingTable]:
        with self._streams.hold("WatchRoutingTable"):
            yield from self._watch(context)

    def _watch(self, context: grpc.ServicerContext) -> Iterator[router_pb2.RoutingTable]:
        subscription = self._table.changes.subscribe()
        try:
            yield self._message(self._table.entries(), partial=False)
            while context.is_active():
                changed = subscription.wait(WATCH_POLL_S)
                if changed is None:
                    return
                if changed:
                    changed.discard(STATUS_KEY)
                    yield self._message(self._table.entries(sorted(changed)), partial=True)
        finally:
            subscription.close()

    def GetRiskReport(
        self, request: router_pb2.GetRiskReportRequest, context: grpc.ServicerContext
    ) -> router_pb2.RiskReport:
        status, settings = self._table.status(), self._settings
        risks = risk.report(self._table.entries(), status.model, settings)
        out = router_pb2.RiskReport(
            horizon_s=status.model.horizon_s or settings.horizon_s,
            threshold_ms=settings.threshold_ms,
            model_version=status.model.version if status.predictor_available else "",
            backends_at_risk=sum(r.breaches for r in risks),
            model_proven=status.model_proven and status.predictor_available,
            trust_reason=status.trust_reason if status.predictor_available else "",
        )
        set_timestamp(out.as_of, status.as_of)
        for r in risks:
            out.backends.add(
                backend_id=r.backend_id,
                predicted_latency_ms=r.predicted_ms,
                observed_latency_ms=r.observed_ms,
                breaches=r.breaches,
                headroom_ms=r.headroom_ms,
                state=STATE[r.state],
                basis=BASIS[r.basis],
                drivers=[
                    router_pb2.RiskDriver(feature=d.feature, value=d.value, z_score=d.z_score, weight=d.weight)
                    for d in r.drivers
                ],
                forecast_ms=r.forecast_ms,
            )
        return out

    def ReportOutcomes(
        self, request: router_pb2.ReportOutcomesRequest, context: grpc.ServicerContext
    ) -> router_pb2.ReportOutcomesResponse:
        log = self._log
        if log is None:
            raise FailedPrecondition("decision_id: this router keeps no decision log")
        n = len(request.outcomes)
        if n > MAX_OUTCOMES:
            raise InvalidInput(f"outcomes: at most {MAX_OUTCOMES} per request, got {n}")
        reports = [
            Report(
                decision_id=o.decision_id,
                latency_ms=o.latency_ms if o.HasField("latency_ms") else None,
                quality=o.quality if o.HasField("quality") else None,
                failed=o.failed,
            )
            for o in request.outcomes
        ]
        receipts = report_all(log, self._summaries, reports)
        for report, receipt in zip(reports, receipts, strict=True):
            # A request that ended (latency or failure), not a late quality
            # score: failures count as load in least-loaded choices.
            if receipt.recorded is not None and (report.failed or report.latency_ms is not None):
                self._table.note_outcome(
                    receipt.recorded.backend_id, report.failed, report.decision_id, report.latency_ms
                )
        return router_pb2.ReportOutcomesResponse(
            receipts=[
                router_pb2.OutcomeReceipt(
                    index=i, status=OUTCOME_STATUS[r.status], reason=f"outcomes[{i}].{r.reason}" if r.reason else ""
                )
                for i, r in enumerate(receipts)
            ]
        )

    def GetPolicyShadow(
        self, request: router_pb2.GetPolicyShadowRequest, context: grpc.ServicerContext
    ) -> router_pb2.PolicyShadowReport:
        shadow, log = self._shadow, self._log
        if shadow is None or log is None:
            raise FailedPrecondition("shadow: this router runs no policy shadow (start it with --shadow-threshold-ms)")

        def live_latency(decision_id: str) -> float | None:
            decision = log.get(decision_id)
            return decision.latency_ms if decision is not None else None

        slo_ms = self._settings.threshold_ms
        c = compare(shadow.pairs(), live_latency, log.realised_near, slo_ms=slo_ms, match_s=SHADOW_MATCH_S)
        return router_pb2.PolicyShadowReport(
            live_threshold_ms=slo_ms,
            alternative_threshold_ms=shadow.settings.threshold_ms,
            decisions=shadow.decisions,
            differing=shadow.differing,
            pairs=c.pairs,
            compared=c.compared,
            missing_live=c.missing_live,
            missing_alternative=c.missing_alternative,
            live_breaches=c.live_breaches,
            alternative_breaches=c.alternative_breaches,
            only_live_breached=c.only_live_breached,
            only_alternative_breached=c.only_alternative_breached,
            p_value=c.p_value,
            significant=c.significant,
            reason=c.reason,
        )

    def ExplainDecision(
        self, request: router_pb2.ExplainDecisionRequest, context: grpc.ServicerContext
    ) -> router_pb2.DecisionRecord:
        return explain.record(
            self._table,
            self._log,
            self._settings.threshold_ms,
            request.decision_id,
            lambda e: self._message([e], partial=True).backends[0],
        )

    def _message(self, entries: list[Entry], *, partial: bool) -> router_pb2.RoutingTable:
        status, settings = self._table.status(), self._settings
        out = router_pb2.RoutingTable(
            partial=partial,
            model_version=status.model.version if status.predictor_available else "",
            threshold_ms=settings.threshold_ms,
            horizon_s=status.model.horizon_s or settings.horizon_s,
            predictor_available=status.predictor_available,
            feature_store_connected=status.feature_store_connected,
            cold_start_points=MIN_POINTS,
            warm_after_s=settings.warm_after_s,
            open_penalty=settings.open_penalty,
            error_penalty=settings.error_penalty,
            error_decay_s=settings.error_decay_s,
            share_by_capacity=settings.share_by_capacity,
            open_share=settings.open_share,
            rate_aware=settings.rate_aware,
            capacity_deadband=settings.capacity_deadband,
            model_proven=status.model_proven and status.predictor_available,
            trust_reason=status.trust_reason if status.predictor_available else "",
        )
        for e in entries:
            route = out.backends.add(
                backend_id=e.backend_id,
                state=STATE[e.breaker.state],
                predicted_latency_ms=e.predicted_ms or 0.0,
                observed_latency_ms=e.observed_ms,
                points_in_window=e.points,
                window_covered_s=e.covered_s,
                cold=e.basis is Basis.COLD_START,
                basis=BASIS[e.basis],
            )
            risk_ms = e.risk_ms
            if risk_ms is not None:
                route.risk_ms = risk_ms
            if e.capacity_rps is not None and e.basis is not Basis.COLD_START:
                route.capacity_rps = e.capacity_rps
            set_timestamp(route.as_of, e.as_of)
            set_timestamp(route.state_since, e.breaker.since)
        return out


def start(config: RouterConfig) -> RunningServer:
    log = DecisionLog(
        max_decisions=config.decision_log_max,
        max_age_s=config.decision_log_max_age_s,
        threshold_ms=config.policy.threshold_ms,
    )
    shadow = None
    if config.shadow_threshold_ms > 0:
        shadow = PolicyShadow(replace(config.policy, threshold_ms=config.shadow_threshold_ms))
    table = RoutingTable(config.policy, log, shadow)
    summaries = Summaries()
    feature_store = tls.channel(config.feature_store_addr, config.tls)
    predictor = tls.channel(config.predictor_addr, config.tls)
    transitions = TransitionLog(table)
    sync = TableSync(
        table, feature_store, predictor, predict_timeout_s=config.predict_timeout_s, on_applied=transitions.applied
    )
    metrics = None
    if config.metrics_port != METRICS_OFF:
        scores = operations.model_scores(predictor, config.predict_timeout_s)
        metrics = operations.setup(config.metrics_port, table, transitions, scores)
    forwarder = OutcomeForwarder(summaries, feature_store, instance=log.instance, flush_s=config.outcome_flush_s)
    running = start_server(
        host=config.host,
        port=config.port,
        service_name=SERVICE_NAME,
        register=lambda server: router_pb2_grpc.add_RouterServicer_to_server(
            RouterServicer(
                table, config.policy, log=log, shadow=shadow, summaries=summaries, max_streams=config.max_streams
            ),
            server,
        ),
        serving=True,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)],
        max_workers=config.max_streams + UNARY_WORKERS,
        tls=config.tls,
        metrics=metrics,
    )
    sync.start()
    forwarder.start()
    running.on_closing.append(table.changes.close)
    running.on_closing.append(sync.stop)
    # After the grace period, so outcomes reported during it are sent too.
    running.on_stop.insert(0, forwarder.stop)
    running.on_stop.append(feature_store.close)
    running.on_stop.append(predictor.close)
    return running
