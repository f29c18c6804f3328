"""The router's Prometheus metrics. Decisions and outcome receipts are
counted from the answers as they leave (one counter increment a Decide);
everything about the breakers, the forecasts and the table is read from the
table and the transition log at scrape time, so Decide pays nothing for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ace.v1 import router_pb2
from services.common.metrics import MAX_LABELLED_BACKENDS
from services.router.policy import Basis, State
from services.router.table import Entry, RoutingTable
from services.router.transitions import TransitionLog

# The breaker state as one number, so a dashboard can plot it over time.
STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}
# The transitions Breaker.observe can make; each exported from the start.
LEGAL = (
    (State.CLOSED, State.OPEN),
    (State.OPEN, State.HALF_OPEN),
    (State.HALF_OPEN, State.OPEN),
    (State.HALF_OPEN, State.CLOSED),
)
STATUSES = {router_pb2.ACCEPTED: "accepted", router_pb2.DUPLICATE: "duplicate", router_pb2.REJECTED: "rejected"}


def _name(enum: object, value: int) -> str:
    return enum.Name(value).lower()  # type: ignore[attr-defined, no-any-return]


class DecisionMetrics:
    """Counts what Decide and ReportOutcomes answered, from their responses."""

    def __init__(self, registry: CollectorRegistry) -> None:
        decisions = Counter(
            "ace_router_decisions",
            "Decide answers, by action (primary, reroute, round_robin, last_resort) and by what the choice rested "
            "on (forecast, observed_latency, cold_start, no_telemetry).",
            ["action", "basis"],
            registry=registry,
        )
        actions = [v for v in router_pb2.Action.values() if v]
        bases = [v for v in router_pb2.DecisionBasis.values() if v]
        # Every pair exists from the start, so a rate over a new pair is never
        # missing its first increment.
        self._decisions = {
            (a, b): decisions.labels(_name(router_pb2.Action, a), _name(router_pb2.DecisionBasis, b))
            for a in actions
            for b in bases
        }
        outcomes = Counter(
            "ace_router_outcomes",
            "Outcomes reported through ReportOutcomes, by receipt: accepted, duplicate (a retry) or rejected.",
            ["status"],
            registry=registry,
        )
        self._outcomes = {status: outcomes.labels(name) for status, name in STATUSES.items()}

    def decided(self, decision: router_pb2.Decision) -> None:
        self._decisions[(decision.action, decision.basis)].inc()

    def reported(self, response: router_pb2.ReportOutcomesResponse) -> None:
        for receipt in response.receipts:
            self._outcomes[receipt.status].inc()

    def observers(self) -> dict[str, Callable[[Any], None]]:
        """For the gRPC metrics interceptor: the answers to count."""
        return {"/ace.v1.Router/Decide": self.decided, "/ace.v1.Router/ReportOutcomes": self.reported}


def labelled(entries: list[Entry], cap: int = MAX_LABELLED_BACKENDS) -> list[Entry]:
    """The backends that get series of their own: all of them up to `cap`,
    else the riskiest `cap` (open breakers first, then by risk)."""
    if len(entries) <= cap:
        return entries
    ranked = sorted(entries, key=lambda e: (-STATE_VALUE[e.breaker.state], -(e.risk_ms or 0.0), e.backend_id))
    return sorted(ranked[:cap], key=lambda e: e.backend_id)


class RouterCollector(Collector):
    def __init__(self, table: RoutingTable, transitions: TransitionLog) -> None:
        self._table = table
        self._transitions = transitions

    def collect(self) -> Iterator[Metric]:
        table = self._table
        entries = table.entries()
        settings = table.settings
        yield from self._fleet(entries)
        yield from self._per_backend(labelled(entries))
        yield GaugeMetricFamily(
            "ace_router_threshold_seconds", "Latency a breaker opens at (--threshold-ms).", settings.threshold_ms / 1000
        )
        yield GaugeMetricFamily(
            "ace_router_horizon_seconds",
            "The horizon forecasts cover (the model's, else --horizon-s).",
            table.model.horizon_s or settings.horizon_s,
        )
        yield from self._status(table)
        yield from self._transition_totals()

    def _fleet(self, entries: list[Entry]) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "ace_router_backends", "Backends in the routing table, by breaker state.", labels=["state"]
        )
        for state in State:
            by_state.add_metric([state.value.lower()], sum(e.breaker.state is state for e in entries))
        yield by_state
        threshold = self._table.settings.threshold_ms
        yield GaugeMetricFamily(
            "ace_router_backends_at_risk",
            "Backends whose risk figure (forecast, or observed latency without a model) is at or over the threshold.",
            sum(e.risk_ms is not None and e.risk_ms >= threshold for e in entries),
        )
        yield GaugeMetricFamily(
            "ace_router_cold_backends",
            "Backends whose window covers too little event time for any figure.",
            sum(e.basis is Basis.COLD_START for e in entries),
        )

    def _per_backend(self, entries: list[Entry]) -> Iterator[Metric]:
        note = f" Up to {MAX_LABELLED_BACKENDS} backends, the riskiest when there are more."
        state = GaugeMetricFamily(
            "ace_router_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open." + note, labels=["backend_id"]
        )
        risk = GaugeMetricFamily(
            "ace_router_backend_risk_seconds",
            "The figure the breaker runs on: the forecast of the horizon's worst latency, or the observed latency "
            "while the predictor is away; absent while the backend is cold." + note,
            labels=["backend_id"],
        )
        forecast = GaugeMetricFamily(
            "ace_router_backend_forecast_seconds",
            "The model's forecast of the backend's worst latency over the horizon, when it has one." + note,
            labels=["backend_id"],
        )
        observed = GaugeMetricFamily(
            "ace_router_backend_observed_latency_seconds",
            "The backend's newest observed latency." + note,
            labels=["backend_id"],
        )
        for e in entries:
            key = [e.backend_id]
            state.add_metric(key, STATE_VALUE[e.breaker.state])
            observed.add_metric(key, e.observed_ms / 1000)
            if e.risk_ms is not None:
                risk.add_metric(key, e.risk_ms / 1000)
            if e.predicted_ms is not None:
                forecast.add_metric(key, e.predicted_ms / 1000)
        yield from (state, risk, forecast, observed)

    def _status(self, table: RoutingTable) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "ace_router_feature_store_connected",
            "1 while the router follows the feature store's watch.",
            int(table.feature_store_connected),
        )
        yield GaugeMetricFamily(
            "ace_router_predictor_available",
            "1 while the predictor answers with forecasts.",
            int(table.predictor_available),
        )
        model = InfoMetricFamily(
            "ace_router_model", "The model version the router's forecasts come from.", labels=["version"]
        )
        if table.predictor_available and table.model.version:
            model.add_metric([table.model.version], {})
        yield model
        yield GaugeMetricFamily(
            "ace_router_table_newest_event_timestamp_seconds",
            "Event time of the newest telemetry in the routing table; 0 before any.",
            table.as_of,
        )

    def _transition_totals(self) -> Iterator[Metric]:
        totals = self._transitions.totals()
        yield GaugeMetricFamily(
            "ace_router_table_last_update_timestamp_seconds",
            "Wall-clock time the sync loop last applied an update to the table; 0 before the first. "
            "time() minus this is the table's staleness.",
            totals.last_applied_at,
        )
        transitions = CounterMetricFamily(
            "ace_router_breaker_transitions",
            "Breaker transitions, by the state left and the state entered.",
            labels=["from_state", "to_state"],
        )
        for before, now in LEGAL:
            transitions.add_metric([before.value.lower(), now.value.lower()], totals.transitions.get((before, now), 0))
        yield transitions
        yield SummaryMetricFamily(
            "ace_router_breaker_lead_seconds",
            "For breaker openings that a breach followed: event-time seconds from the opening to the observed "
            "latency reaching the threshold (0 when it was already there).",
            count_value=totals.leads,
            sum_value=totals.lead_sum_s,
        )
        yield CounterMetricFamily(
            "ace_router_breaker_unconfirmed_openings",
            "Breaker openings that closed again with no observed breach: averted or false alarms.",
            totals.unconfirmed,
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())
