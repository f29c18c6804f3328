"""The router's decision log: what each decision was, so that the latency a
request actually saw (seconds later) and its quality score (hours later)
can be joined to it when the proxy reports them.

Decision ids are issued here, "<instance>-<sequence>", the instance being
random per router start: an id from another router, or from before a
restart, is told apart from one that merely expired. The log is bounded by
count and by age (the router's clock); the oldest decisions go first.

Reports are idempotent: the same value again is a duplicate, accepted; a
different value for an outcome already recorded is rejected with a reason.
Reports may come in any order (quality before latency is fine).
"""

from __future__ import annotations

import bisect
import enum
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace


class Status(enum.Enum):
    # Recorded now.
    ACCEPTED = "ACCEPTED"
    # The same value was recorded before; nothing changed.
    DUPLICATE = "DUPLICATE"
    # Not recorded; the reason says why.
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Receipt:
    status: Status
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    backend_id: str
    decided_at: float  # the router's clock, seconds since the epoch
    forecast_ms: float | None  # the chosen backend's risk figure; None when cold or unknown
    model_version: str  # empty when no forecast was used
    latency_ms: float | None = None  # what the request saw, once reported
    quality: float | None = None  # in [0, 1], once reported


@dataclass(frozen=True)
class LatencyStats:
    """Realised latency of one backend over its most recent outcomes."""

    outcomes: int
    mean_ms: float
    p95_ms: float
    max_ms: float
    breaches: int  # outcomes at or above the threshold
    threshold_ms: float


class DecisionLog:
    def __init__(
        self,
        *,
        max_decisions: int = 100_000,
        max_age_s: float = 6 * 3600.0,
        threshold_ms: float = 300.0,
        outcomes_per_backend: int = 1_000,
        clock: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        if max_decisions < 1:
            raise ValueError(f"max_decisions: must be >= 1, got {max_decisions!r}")
        if not (math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError(f"max_age_s: must be finite and > 0, got {max_age_s!r}")
        if outcomes_per_backend < 1:
            raise ValueError(f"outcomes_per_backend: must be >= 1, got {outcomes_per_backend!r}")
        self.max_decisions = max_decisions
        self.max_age_s = max_age_s
        self.threshold_ms = threshold_ms
        self._outcomes_per_backend = outcomes_per_backend
        self._clock = clock
        self.instance = instance if instance is not None else secrets.token_hex(4)
        if not self.instance or "-" in self.instance:
            raise ValueError(f"instance: must be non-empty without '-', got {self.instance!r}")
        self._lock = threading.Lock()
        self._sequence = 0
        self._decisions: OrderedDict[int, Decision] = OrderedDict()
        # Per backend, (decided_at, latency_ms) of its latest outcomes, by decided_at.
        self._realised: dict[str, deque[tuple[float, float]]] = {}

    def record(self, backend_id: str, forecast_ms: float | None, model_version: str) -> str:
        """Logs a decision; returns its id."""
        now = self._clock()
        with self._lock:
            self._sequence += 1
            decision_id = f"{self.instance}-{self._sequence}"
            self._decisions[self._sequence] = Decision(decision_id, backend_id, now, forecast_ms, model_version)
            self._evict(now)
            return decision_id

    def get(self, decision_id: str) -> Decision | None:
        with self._lock:
            sequence, _ = self._find(decision_id, self._clock())
            return self._decisions.get(sequence) if sequence is not None else None

    def report_latency(self, decision_id: str, latency_ms: float) -> Receipt:
        if not (math.isfinite(latency_ms) and latency_ms >= 0):
            return Receipt(Status.REJECTED, f"latency_ms: must be finite and >= 0, got {latency_ms!r}")
        with self._lock:
            sequence, why = self._find(decision_id, self._clock())
            if sequence is None:
                return Receipt(Status.REJECTED, why)
            d = self._decisions[sequence]
            if d.latency_ms is not None:
                return _again(d.decision_id, "latency_ms", d.latency_ms, latency_ms)
            self._decisions[sequence] = replace(d, latency_ms=latency_ms)
            self._add_realised(d.backend_id, d.decided_at, latency_ms)
            return Receipt(Status.ACCEPTED)

    def report_quality(self, decision_id: str, quality: float) -> Receipt:
        if not (math.isfinite(quality) and 0 <= quality <= 1):
            return Receipt(Status.REJECTED, f"quality: must be in [0, 1], got {quality!r}")
        with self._lock:
            sequence, why = self._find(decision_id, self._clock())
            if sequence is None:
                return Receipt(Status.REJECTED, why)
            d = self._decisions[sequence]
            if d.quality is not None:
                return _again(d.decision_id, "quality", d.quality, quality)
            self._decisions[sequence] = replace(d, quality=quality)
            return Receipt(Status.ACCEPTED)

    def stats(self) -> dict[str, LatencyStats]:
        """Realised latency per backend, over its latest outcomes."""
        with self._lock:
            return {b: self._stats(list(q)) for b, q in sorted(self._realised.items()) if q}

    def realised_near(self, backend_id: str, at: float, within_s: float) -> float | None:
        """The realised latency of the backend's outcome decided closest to
        `at`, if one was decided within `within_s` of it."""
        with self._lock:
            q = self._realised.get(backend_id)
            if not q:
                return None
            times = [t for t, _ in q]
            i = bisect.bisect_left(times, at)
            best: tuple[float, float] | None = None
            for j in (i - 1, i):
                if 0 <= j < len(q) and (best is None or abs(q[j][0] - at) < abs(best[0] - at)):
                    best = q[j]
            if best is None or abs(best[0] - at) > within_s:
                return None
            return best[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._decisions)

    def _find(self, decision_id: str, now: float) -> tuple[int | None, str]:
        """The sequence of a live decision, or None and why not."""
        self._evict(now)
        instance, _, number = decision_id.rpartition("-")
        if not instance or not number.isdigit():
            return None, f"decision_id: {decision_id!r} is not an id this router issues"
        if instance != self.instance:
            return None, (
                f"decision_id: {decision_id!r} was issued by another router instance (or before a restart); "
                f"this one is {self.instance!r}"
            )
        sequence = int(number)
        if sequence < 1 or sequence > self._sequence:
            return None, f"decision_id: {decision_id!r} was never issued"
        if sequence not in self._decisions:
            return None, (
                f"decision_id: {decision_id!r} has expired: the log keeps the latest {self.max_decisions} "
                f"decisions for at most {self.max_age_s:g} s"
            )
        return sequence, ""

    def _evict(self, now: float) -> None:
        decisions = self._decisions
        while len(decisions) > self.max_decisions:
            decisions.popitem(last=False)
        while decisions:
            oldest = next(iter(decisions.values()))
            if now - oldest.decided_at <= self.max_age_s:
                break
            decisions.popitem(last=False)

    def _add_realised(self, backend_id: str, decided_at: float, latency_ms: float) -> None:
        q = self._realised.get(backend_id)
        if q is None:
            q = self._realised[backend_id] = deque(maxlen=self._outcomes_per_backend)
        # Outcomes arrive in any order; kept sorted by decision time so the
        # nearest one to a moment can be found by bisection.
        if not q or q[-1][0] <= decided_at:
            q.append((decided_at, latency_ms))
            return
        items = list(q)
        bisect.insort(items, (decided_at, latency_ms))
        q.clear()
        q.extend(items[-self._outcomes_per_backend :])

    def _stats(self, items: list[tuple[float, float]]) -> LatencyStats:
        values = sorted(v for _, v in items)
        n = len(values)
        return LatencyStats(
            outcomes=n,
            mean_ms=sum(values) / n,
            p95_ms=values[min(n - 1, math.ceil(0.95 * n) - 1)],
            max_ms=values[-1],
            breaches=sum(1 for v in values if v >= self.threshold_ms),
            threshold_ms=self.threshold_ms,
        )


def _again(decision_id: str, field: str, old: float, new: float) -> Receipt:
    if old == new:
        return Receipt(Status.DUPLICATE, f"{field}: already recorded for {decision_id} with the same value")
    return Receipt(
        Status.REJECTED, f"{field}: {decision_id} already has {old!r}; a different value {new!r} is not taken"
    )
