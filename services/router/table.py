"""The routing table: what the router knows about each backend, its breaker,
and the decisions made from it. Updated by the sync loop, read by Decide; a
decision is a lookup under one short lock, never a network call. Each
decision is logged (an id to report its outcome with) and, when a policy
shadow runs, shown to it along with every update the table applies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from services.common.changes import ChangeFeed
from services.common.features import FEATURE_NAMES, LATENCY_INDEX, N_FEATURES
from services.router.outcomes import DecisionLog
from services.router.outstanding import Outstanding
from services.router.policy import Basis, Breaker, Candidate, Choice, Settings, State, capacity_rps, expire, observe
from services.router.policy_shadow import PolicyShadow
from services.router.rotation import Rotation

_log = structlog.get_logger("router")
LOAD_INDEX = FEATURE_NAMES.index("load")
ERROR_INDEX = FEATURE_NAMES.index("error_rate")

# Key published on the change feed when table-wide status (model, links) changes.
STATUS_KEY = ""


@dataclass(frozen=True)
class Update:
    """One backend's new features, and the forecast for them if there is one."""

    backend_id: str
    as_of: float
    points: int
    observed_ms: float
    predicted_ms: float | None
    features: npt.NDArray[np.float64] | None = None
    # Whether predicted_ms may drive the breaker: the predictor's trust gate
    # passed its model on this fleet's labels.
    proven: bool = True
    # Event time the backend's window covers, seconds (warmth is judged by it).
    covered_s: float = field(kw_only=True)


@dataclass
class Entry:
    backend_id: str
    breaker: Breaker
    as_of: float = 0.0
    points: int = 0
    observed_ms: float = 0.0
    predicted_ms: float | None = None
    basis: Basis = Basis.COLD_START
    features: npt.NDArray[np.float64] | None = None
    # The figure the breaker runs on (policy.observe); None while cold.
    risk_ms: float | None = None
    covered_s: float = 0.0
    # Running estimate of the requests/s it could serve (policy.capacity_rps).
    capacity_rps: float | None = None


@dataclass(frozen=True)
class ModelFacts:
    """What the router keeps about the active model, to explain risks."""

    version: str = ""
    horizon_s: float = 0.0
    feature_names: tuple[str, ...] = ()
    importances: dict[str, float] = field(default_factory=dict)
    means: tuple[float, ...] = ()
    stds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Status:
    """The table-wide facts, read together."""

    model: ModelFacts
    predictor_available: bool
    feature_store_connected: bool
    as_of: float  # event time of the newest telemetry seen
    model_proven: bool = False
    trust_reason: str = ""


@dataclass(frozen=True)
class Decided:
    """A choice and what the answer says about the chosen backend; state is
    None (and risk_ms and as_of empty) when nothing was known about it."""

    choice: Choice
    basis: Basis
    model_version: str
    state: State | None = None
    risk_ms: float | None = None
    as_of: float = 0.0
    decision_id: str = ""  # empty when the table keeps no decision log
    # The choice weighed in-flight counts (the caller's, or the router's
    # from reported outcomes), so it does not repeat with the turn.
    load_aware: bool = False


COUNTED_NOTE = "; in-flight counts are this router's, from the outcomes its callers report"


class RoutingTable:
    def __init__(
        self,
        settings: Settings,
        log: DecisionLog | None = None,
        shadow: PolicyShadow | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        # Fades failure scores between outcomes (seconds; any origin).
        self._clock = clock
        self._decisions = log
        self._shadow = shadow
        self.changes = ChangeFeed()
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        # What decisions read: one ready Candidate per backend, replaced on
        # every update, so Decide neither builds nor copies per candidate.
        self._rotation = Rotation(settings)
        # Requests placed and not yet reported ended, when callers report
        # outcomes; only a table with a decision log hands out the ids
        # outcomes name.
        self._outstanding = Outstanding() if log is not None else None
        self.model = ModelFacts()
        self.predictor_available = False
        self.feature_store_connected = False
        # The predictor's trust verdict on the model of the newest forecasts.
        self.model_proven = False
        self.trust_reason = ""
        # Event time of the newest telemetry the table has seen.
        self.as_of = 0.0
        # Backends whose breaker is open: each apply checks whether the
        # fleet's event time has run past their probe_after_s.
        self._open: set[str] = set()

    # --- writers (the sync loop) ---

    def apply(self, updates: Sequence[Update]) -> list[str]:
        """Applies the updates; returns the backends that changed: those
        updated, then those whose open breaker half-opened because the
        fleet's telemetry moved on while they sent none."""
        changed: list[str] = []
        with self._lock:
            guard = self._overload_guard(updates)
            for u in updates:
                entry = self._entries.get(u.backend_id)
                if entry is None:
                    entry = Entry(u.backend_id, Breaker(since=u.as_of))
                    self._entries[u.backend_id] = entry
                    _log.info("backend_added", backend=u.backend_id)
                entry.as_of, entry.points, entry.observed_ms = u.as_of, u.points, u.observed_ms
                entry.predicted_ms, entry.features = u.predicted_ms, u.features
                entry.covered_s = u.covered_s
                self.as_of = max(self.as_of, u.as_of)
                old = entry.breaker.state
                candidate = observe(
                    entry.breaker,
                    u.backend_id,
                    u.points,
                    u.predicted_ms,
                    u.observed_ms,
                    u.as_of,
                    self.settings,
                    u.proven,
                    covered_s=u.covered_s,
                    capacity=self._capacity(entry, u.features, guard),
                )
                entry.basis, entry.risk_ms = candidate.basis, candidate.risk_ms
                self._put(entry, candidate, old, u.as_of)
                if self._shadow is not None:
                    self._shadow.observe(
                        u.backend_id,
                        u.as_of,
                        u.points,
                        u.predicted_ms,
                        u.observed_ms,
                        covered_s=u.covered_s,
                        capacity=candidate.capacity_rps,
                    )
                changed.append(u.backend_id)
            changed.extend(self._expire())
            if self._shadow is not None:
                self._shadow.expire(self.as_of)
        self.changes.publish(changed)
        return changed

    def _overload_guard(self, updates: Sequence[Update]) -> float | None:
        """The threshold over which a backend's capacity estimate is capped
        (policy.capacity_rps), or None: only while the pool's median latency
        is under it, so a backend slow while the others are not is capped,
        and a pool all slow together (a flash crowd) is not. Caller holds
        the lock."""
        threshold = self.settings.threshold_ms
        # The cap applies only to a latency over the threshold: without one
        # in this batch there is no median to take.
        if not self.settings.overload_guard or all(u.observed_ms <= threshold for u in updates):
            return None
        latest = {backend_id: e.observed_ms for backend_id, e in self._entries.items()}
        latest.update((u.backend_id, u.observed_ms) for u in updates)
        return threshold if latest and float(np.median(list(latest.values()))) <= threshold else None

    def _capacity(self, entry: Entry, vector: npt.NDArray[np.float64] | None, guard: float | None) -> float | None:
        """Folds this update's capacity estimate into the entry's running one."""
        new = _estimate(vector, guard)
        if new is None:
            return entry.capacity_rps
        old = entry.capacity_rps
        alpha = self.settings.capacity_smoothing
        entry.capacity_rps = new if old is None else old + alpha * (new - old)
        return entry.capacity_rps

    def _put(self, entry: Entry, candidate: Candidate, old: State, at: float) -> None:
        """Hands a backend's new candidate to the rotation; logs a change of
        its breaker's state. Caller holds the lock."""
        backend_id = entry.backend_id
        new = candidate.state
        if new is State.OPEN:
            self._open.add(backend_id)
        else:
            self._open.discard(backend_id)
        if new is not old:
            _log.info(
                "breaker_transition",
                backend=backend_id,
                from_state=old.value,
                to_state=new.value,
                risk_ms=round(candidate.risk_ms or 0.0, 1),
                basis=candidate.basis.value,
                event_time=at,
            )
        self._rotation.put(candidate)

    def _expire(self) -> list[str]:
        """Half-opens the open breakers that have had no figure for
        probe_after_s of the fleet's event time; their ids. Caller holds
        the lock."""
        expired: list[str] = []
        for backend_id in sorted(self._open):
            entry = self._entries[backend_id]
            current = self._rotation.get(backend_id)
            assert current is not None  # every entry's candidate is in the rotation
            candidate = expire(entry.breaker, current, self.as_of, self.settings)
            if candidate is not None:
                self._put(entry, candidate, State.OPEN, self.as_of)
                expired.append(backend_id)
        return expired

    def set_status(
        self,
        *,
        predictor_available: bool | None = None,
        feature_store_connected: bool | None = None,
        model: ModelFacts | None = None,
        trust: tuple[bool, str] | None = None,
    ) -> None:
        """`trust` is the predictor's (model_proven, trust_reason)."""
        changed = False
        with self._lock:
            if trust is not None:
                # The reason's figures move with every Predict; only a change
                # of verdict is news. Each message carries the newest reason.
                if trust[0] != self.model_proven:
                    _log.info("model_trust_changed", proven=trust[0], reason=trust[1])
                    changed = True
                self.model_proven, self.trust_reason = trust
            if predictor_available is not None and predictor_available != self.predictor_available:
                self.predictor_available = predictor_available
                _log.info("predictor_available" if predictor_available else "predictor_unavailable")
                changed = True
            if feature_store_connected is not None and feature_store_connected != self.feature_store_connected:
                self.feature_store_connected = feature_store_connected
                self._rotation.stale = not feature_store_connected
                _log.info("feature_store_connected" if feature_store_connected else "feature_store_disconnected")
                changed = True
            if model is not None and model.version != self.model.version:
                self.model = model
                _log.info("model_changed", version=model.version)
                changed = True
        if changed:
            self.changes.publish([STATUS_KEY])

    def note_outcome(
        self, backend_id: str, failed: bool, decision_id: str = "", latency_ms: float | None = None
    ) -> None:
        """The end of a request on a backend, as the caller reported it:
        recent failures count as load in least-loaded choices, and the
        decision no longer counts as outstanding."""
        with self._lock:
            self._rotation.note_outcome(backend_id, failed, self._clock())
            if decision_id and self._outstanding is not None:
                self._outstanding.ended(decision_id, self._decisions.now(), latency_ms)  # type: ignore[union-attr]

    # --- readers ---

    def status(self) -> Status:
        with self._lock:
            return Status(
                self.model,
                self.predictor_available,
                self.feature_store_connected,
                self.as_of,
                self.model_proven,
                self.trust_reason,
            )

    def entries(self, backend_ids: Sequence[str] | None = None) -> list[Entry]:
        """Copies of the entries, sorted by backend id."""
        with self._lock:
            ids = sorted(self._entries) if backend_ids is None else sorted(i for i in backend_ids if i in self._entries)
            return [_copy(self._entries[i]) for i in ids]

    def decide(self, candidates: Sequence[str], in_flight: Mapping[str, int] | None = None) -> Decided:
        """Chooses among the candidates (every known backend when none are
        given), least-loaded when the caller gives its requests in flight.
        InvalidInput names an empty, repeated or unknown candidate;
        FailedPrecondition when none are given and none is known."""
        with self._lock:
            reported = None
            if in_flight is None and self._outstanding is not None and self.settings.count_reported:
                in_flight = reported = self._outstanding.counts(self._decisions.now())  # type: ignore[union-attr]
            choice, chosen = self._rotation.pick(candidates, in_flight, self._clock() if in_flight else 0.0)
            if reported:
                choice = _counted_from_outcomes(choice)
            decision_id = ""
            if chosen is None:
                if self._decisions is not None:
                    decision_id = self._log_decision(choice, candidates, in_flight, None, "", 0.0)
                return Decided(choice, Basis.NO_TELEMETRY, "", decision_id=decision_id, load_aware=bool(in_flight))
            model_version = self.model.version if chosen.basis is Basis.FORECAST else ""
            risk_ms = chosen.risk_ms
            as_of = self._entries[chosen.backend_id].as_of
            if self._decisions is not None:
                decision_id = self._log_decision(choice, candidates, in_flight, risk_ms, model_version, as_of)
            return Decided(
                choice, chosen.basis, model_version, chosen.state, risk_ms, as_of, decision_id, bool(in_flight)
            )

    def _log_decision(
        self,
        choice: Choice,
        candidates: Sequence[str],
        in_flight: Mapping[str, int] | None,
        risk_ms: float | None,
        model_version: str,
        as_of: float,
    ) -> str:
        """Records the decision and shows it to the shadow; its id."""
        assert self._decisions is not None
        decided_at = self._decisions.now()
        decision_id = self._decisions.record(choice.backend_id, risk_ms, model_version, as_of, decided_at)
        if self._shadow is not None:
            alternative = self._shadow.pick(candidates, in_flight)
            self._shadow.record(decision_id, decided_at, choice.backend_id, alternative.backend_id)
        # After the shadow has seen the counts: they may be the router's own,
        # which counting this decision changes.
        if self._outstanding is not None and self.settings.count_reported:
            self._outstanding.issued(decision_id, choice.backend_id, decided_at)
        return decision_id


def _counted_from_outcomes(choice: Choice) -> Choice:
    """The choice, its reason saying where the counts came from."""

    def word() -> tuple[str, tuple[str, ...]]:
        return choice.reason + COUNTED_NOTE, choice.fallbacks

    return Choice(choice.backend_id, choice.action, skipped=choice.skipped, word=word)


def _estimate(vector: npt.NDArray[np.float64] | None, threshold_ms: float | None) -> float | None:
    if vector is None or len(vector) < N_FEATURES:
        return None
    return capacity_rps(
        float(vector[LOAD_INDEX]), float(vector[LATENCY_INDEX]), float(vector[ERROR_INDEX]), threshold_ms
    )


def _copy(e: Entry) -> Entry:
    return Entry(
        backend_id=e.backend_id,
        breaker=Breaker(e.breaker.state, e.breaker.since),
        as_of=e.as_of,
        points=e.points,
        observed_ms=e.observed_ms,
        predicted_ms=e.predicted_ms,
        basis=e.basis,
        features=e.features,
        risk_ms=e.risk_ms,
        covered_s=e.covered_s,
        capacity_rps=e.capacity_rps,
    )
