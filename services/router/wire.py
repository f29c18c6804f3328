"""The router's plain values on the wire: the policy's enums as ace.v1
enums and back, a routing-table row as the Candidate a decision reads, and
a routing table's fields as the Settings it decides with.
The router's servicer and the client library both convert here, so a
client's Candidate is the one the router's own table holds."""

from __future__ import annotations

from ace.v1 import router_pb2
from services.router.policy import Action, Basis, Candidate, Settings, State

ACTION = {
    Action.PRIMARY: router_pb2.PRIMARY,
    Action.REROUTE: router_pb2.REROUTE,
    Action.ROUND_ROBIN: router_pb2.ROUND_ROBIN,
    Action.LAST_RESORT: router_pb2.LAST_RESORT,
}
STATE = {State.CLOSED: router_pb2.CLOSED, State.OPEN: router_pb2.OPEN, State.HALF_OPEN: router_pb2.HALF_OPEN}
BASIS = {
    Basis.FORECAST: router_pb2.FORECAST,
    Basis.OBSERVED_LATENCY: router_pb2.OBSERVED_LATENCY,
    Basis.COLD_START: router_pb2.COLD_START,
    Basis.NO_TELEMETRY: router_pb2.NO_TELEMETRY,
    Basis.MODEL_UNPROVEN: router_pb2.MODEL_UNPROVEN,
    Basis.OBSERVED_OVER_FORECAST: router_pb2.OBSERVED_OVER_FORECAST,
}
STATE_OF = {wire: state for state, wire in STATE.items()}
BASIS_OF = {wire: basis for basis, wire in BASIS.items()}


def candidate(route: router_pb2.BackendRoute) -> Candidate:
    """The Candidate the router's table holds for this row. A state or basis
    this version does not know (a newer router) reads as OPEN or COLD_START,
    the cautious ones."""
    return Candidate(
        backend_id=route.backend_id,
        state=STATE_OF.get(route.state, State.OPEN),
        cold=route.cold,
        points=route.points_in_window,
        risk_ms=route.risk_ms if route.HasField("risk_ms") else None,
        basis=BASIS_OF.get(route.basis, Basis.COLD_START),
        covered_s=route.window_covered_s,
        capacity_rps=route.capacity_rps if route.HasField("capacity_rps") else None,
    )


def settings(table: router_pb2.RoutingTable) -> Settings:
    """The policy settings a routing table says the router decides with."""
    return Settings(
        threshold_ms=table.threshold_ms,
        horizon_s=table.horizon_s,
        # A router that predates the field sends 0; its own default is
        # the best guess of what it used.
        warm_after_s=table.warm_after_s or Settings.warm_after_s,
        open_penalty=table.open_penalty,
        error_penalty=table.error_penalty,
        error_decay_s=table.error_decay_s or Settings.error_decay_s,
        share_by_capacity=table.share_by_capacity,
        open_share=table.open_share,
        rate_aware=table.rate_aware,
        capacity_deadband=table.capacity_deadband,
    )
