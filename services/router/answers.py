"""The Decision message for a decided choice. Without in-flight counts a
choice repeats with the rotation's turn (Rotation keeps it), so the part of
its answer that is not the request's own is built once and merged into each
answer: inside a gRPC worker thread, building the message field by field
took longer than deciding (make bench's typed-method row)."""

from __future__ import annotations

from ace.v1 import router_pb2
from services.common.timeutil import set_timestamp
from services.router.table import Decided
from services.router.wire import ACTION, BASIS, STATE

# Kept answers; more, and they all start afresh (a rotation's cycles are
# bounded alike).
MAX_KEPT = 4096


def build(decided: Decided) -> router_pb2.Decision:
    """Every field of the answer but the request's own (request_id, decision_id)."""
    choice = decided.choice
    decision = router_pb2.Decision(
        backend_id=choice.backend_id,
        action=ACTION[choice.action],
        reason=choice.reason,
        model_version=decided.model_version,
        fallbacks=choice.fallbacks,
        skipped=choice.skipped,
        basis=BASIS[decided.basis],
    )
    if decided.state is not None:
        decision.predicted_latency_ms = decided.risk_ms or 0.0
        decision.breaker_state = STATE[decided.state]
        set_timestamp(decision.as_of, decided.as_of)
    return decision


class Answers:
    """Answers by choice. A choice is immutable, and what a Decided adds to
    it is compared before a kept answer is used, so it is never out of date.
    Not locked: two threads that miss together build the same answer."""

    def __init__(self) -> None:
        # By the choice's id; the entry holds the choice, so the id cannot
        # be reused while it is kept.
        self._kept: dict[int, tuple[object, tuple[object, ...], router_pb2.Decision]] = {}

    def answer(self, request_id: str, decided: Decided, *, repeats: bool) -> router_pb2.Decision:
        """The Decision for `decided`; `repeats` when the choice may come
        again (no in-flight counts): only those are kept."""
        if not repeats:
            decision = build(decided)
            decision.request_id = request_id
            decision.decision_id = decided.decision_id
            return decision
        choice = decided.choice
        about = (decided.basis, decided.model_version, decided.state, decided.risk_ms, decided.as_of)
        entry = self._kept.get(id(choice))
        if entry is None or entry[0] is not choice or entry[1] != about:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            entry = self._kept[id(choice)] = (choice, about, build(decided))
        decision = router_pb2.Decision(request_id=request_id, decision_id=decided.decision_id)
        decision.MergeFrom(entry[2])
        return decision
