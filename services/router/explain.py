"""ExplainDecision: one decision from the decision log, and its backend as
the table holds it now, as the wire message."""

from __future__ import annotations

import math
from collections.abc import Callable

from ace.v1 import router_pb2
from services.common.errors import FailedPrecondition, InvalidInput, NotFound
from services.common.timeutil import set_timestamp
from services.router.outcomes import DecisionLog
from services.router.table import Entry, RoutingTable

Route = Callable[[Entry], router_pb2.BackendRoute]


def record(
    table: RoutingTable, log: DecisionLog | None, threshold_ms: float, decision_id: str, route: Route
) -> router_pb2.DecisionRecord:
    """`route` turns a table entry into its wire row, as the routing table
    answers it."""
    if log is None:
        raise FailedPrecondition("decision_id: this router keeps no decision log")
    if not decision_id:
        raise InvalidInput("decision_id: must not be empty")
    decision, why = log.lookup(decision_id)
    if decision is None:
        raise NotFound(why)
    out = router_pb2.DecisionRecord(
        decision_id=decision.decision_id,
        backend_id=decision.backend_id,
        model_version=decision.model_version,
        threshold_ms=threshold_ms,
    )
    set_timestamp(out.decided_at, decision.decided_at)
    if decision.as_of > 0:
        set_timestamp(out.as_of, decision.as_of)
    for field, value in (
        ("risk_ms", decision.forecast_ms),
        ("latency_ms", decision.latency_ms),
        ("quality", decision.quality),
    ):
        if value is not None and math.isfinite(value):
            setattr(out, field, value)
    now = table.entries([decision.backend_id])
    if now:
        out.backend_now.CopyFrom(route(now[0]))
    return out
