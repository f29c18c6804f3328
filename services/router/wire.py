"""The router's plain values on the wire: the policy's enums as ace.v1
enums and back, and a routing-table row as the Candidate a decision reads.
The router's servicer and the client library both convert here, so a
client's Candidate is the one the router's own table holds."""

from __future__ import annotations

from ace.v1 import router_pb2
from services.router.policy import Action, Basis, Candidate, State

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
