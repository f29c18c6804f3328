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

Quality arrives hours later, so the log must hold hours of decisions. It is
kept in columns (array.array) of blocks of BLOCK decisions, 48 bytes a
decision, not one object each (about 300 bytes): two million decisions,
5.5 hours at 100 decisions a second, fit in about 100 MB. Backend ids and
model versions are stored once each and referred to by number. Memory is
given back a whole block at a time; whether one decision is still held is
decided exactly, by its own sequence and time.
"""

from __future__ import annotations

import bisect
import enum
import math
import secrets
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from services.common.telemetry import MAX_MAGNITUDE

NAN = math.nan
# Decisions per block of columns: large enough that starting one is rare,
# small enough that an idle router holds little.
BLOCK = 4096
_ZEROS = array("d", bytes(8 * BLOCK))
_NANS = array("d", [NAN] * BLOCK)
_INDEX_ZEROS = array("I", bytes(4 * BLOCK))


class Status(enum.Enum):
    # Recorded now.
    ACCEPTED = "ACCEPTED"
    # Everything reported was recorded before with the same values.
    DUPLICATE = "DUPLICATE"
    # Not recorded; the reason says why.
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What an accepted report added to a decision, for forwarding."""

    backend_id: str
    as_of: float  # event time of the telemetry the decision rested on; 0 when none
    latency_ms: float | None  # newly recorded, else None
    quality: float | None  # newly recorded, else None


@dataclass(frozen=True)
class Receipt:
    status: Status
    reason: str = ""
    recorded: Recorded | None = None  # set when ACCEPTED


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    backend_id: str
    decided_at: float  # the router's clock, seconds since the epoch
    forecast_ms: float | None  # the chosen backend's risk figure; None when cold or unknown
    model_version: str  # empty when no forecast was used
    latency_ms: float | None = None  # what the request saw, once reported
    quality: float | None = None  # in [0, 1], once reported
    as_of: float = 0.0  # event time of the telemetry behind the choice; 0 when none


@dataclass(frozen=True)
class LatencyStats:
    """Realised latency of one backend over its most recent outcomes."""

    outcomes: int
    mean_ms: float
    p95_ms: float
    max_ms: float
    breaches: int  # outcomes at or above the threshold
    threshold_ms: float


class _Block:
    """The columns of BLOCK consecutive decisions, from sequence `first`."""

    __slots__ = ("as_of", "backend", "decided_at", "first", "forecast", "latency", "model", "quality")

    def __init__(self, first: int) -> None:
        self.first = first
        self.backend = _INDEX_ZEROS[:]
        self.model = _INDEX_ZEROS[:]
        self.decided_at = _ZEROS[:]
        self.as_of = _ZEROS[:]
        self.forecast = _NANS[:]
        self.latency = _NANS[:]
        self.quality = _NANS[:]


class _Names:
    """Each distinct string once, referred to by number."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, name: str) -> int:
        i = self._index.get(name)
        if i is None:
            i = self._index[name] = len(self.names)
            self.names.append(name)
        return i


class DecisionLog:
    def __init__(
        self,
        *,
        max_decisions: int = 2_000_000,
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
        self._prefix = self.instance + "-"
        self._lock = threading.Lock()
        self._sequence = 0
        self._blocks: deque[_Block] = deque()
        self._backends = _Names()
        self._models = _Names()
        # Per backend, (decided_at, latency_ms) of its latest outcomes, by decided_at.
        self._realised: dict[str, deque[tuple[float, float]]] = {}

    def record(
        self,
        backend_id: str,
        forecast_ms: float | None,
        model_version: str,
        as_of: float = 0.0,
        decided_at: float | None = None,
    ) -> str:
        """Logs a decision; returns its id. decided_at defaults to now()
        (the log's clock). Called for every Decide, so it writes a few
        numbers and allocates nothing but the id."""
        now = self._clock() if decided_at is None else decided_at
        with self._lock:
            sequence = self._sequence = self._sequence + 1
            offset = (sequence - 1) % BLOCK
            if offset == 0:
                self._blocks.append(_Block(sequence))
                self._drop_blocks(now)
            block = self._blocks[-1]
            block.backend[offset] = self._backends.index(backend_id)
            block.model[offset] = self._models.index(model_version)
            block.decided_at[offset] = now
            block.as_of[offset] = as_of
            if forecast_ms is not None:
                block.forecast[offset] = forecast_ms
        return f"{self._prefix}{sequence}"

    def now(self) -> float:
        """The log's clock."""
        return self._clock()

    def get(self, decision_id: str) -> Decision | None:
        return self.lookup(decision_id)[0]

    def lookup(self, decision_id: str) -> tuple[Decision | None, str]:
        """The decision, or None and why it is not held (never issued here,
        another instance's, expired), naming the decision_id field."""
        with self._lock:
            found, why = self._find(decision_id, self._clock())
            return (self._decision(*found) if found is not None else None), why

    def report(
        self,
        decision_id: str,
        *,
        latency_ms: float | None = None,
        quality: float | None = None,
        failed: bool = False,
    ) -> Receipt:
        """Records what the outcome reports, all or nothing: a value out of
        range, or one that contradicts what was recorded before, rejects the
        whole outcome. A failed request is recorded as quality 0."""
        # The bound is the feature store's for a summary's latencies: a larger
        # one accepted here would get the whole bucket's summary refused there.
        if latency_ms is not None and not 0 <= latency_ms <= MAX_MAGNITUDE:
            return Receipt(Status.REJECTED, f"latency_ms: must be in [0, {MAX_MAGNITUDE:g}], got {latency_ms!r}")
        if quality is not None and not (math.isfinite(quality) and 0 <= quality <= 1):
            return Receipt(Status.REJECTED, f"quality: must be in [0, 1], got {quality!r}")
        if failed:
            if quality is not None and quality != 0:
                return Receipt(Status.REJECTED, f"failed: a failed request has quality 0, got quality {quality!r}")
            quality = 0.0
        if latency_ms is None and quality is None:
            return Receipt(Status.REJECTED, "outcome: reports none of latency_ms, quality or failed")
        with self._lock:
            found, why = self._find(decision_id, self._clock())
            if found is None:
                return Receipt(Status.REJECTED, why)
            block, offset = found
            new_latency = new_quality = None
            duplicates = []
            for name, column, value in (("latency_ms", block.latency, latency_ms), ("quality", block.quality, quality)):
                if value is None:
                    continue
                old = column[offset]
                if math.isnan(old):
                    if name == "latency_ms":
                        new_latency = value
                    else:
                        new_quality = value
                elif old == value:
                    duplicates.append(name)
                else:
                    return Receipt(
                        Status.REJECTED,
                        f"{name}: {decision_id} already has {old!r}; a different value {value!r} is not taken",
                    )
            if new_latency is None and new_quality is None:
                return Receipt(
                    Status.DUPLICATE, f"{', '.join(duplicates)}: already recorded for {decision_id} with the same value"
                )
            backend_id = self._backends.names[block.backend[offset]]
            if new_latency is not None:
                block.latency[offset] = new_latency
                self._add_realised(backend_id, block.decided_at[offset], new_latency)
            if new_quality is not None:
                block.quality[offset] = new_quality
            return Receipt(
                Status.ACCEPTED, recorded=Recorded(backend_id, block.as_of[offset], new_latency, new_quality)
            )

    def report_latency(self, decision_id: str, latency_ms: float) -> Receipt:
        return self.report(decision_id, latency_ms=latency_ms)

    def report_quality(self, decision_id: str, quality: float) -> Receipt:
        return self.report(decision_id, quality=quality)

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
        """Decisions still held (a slow count, for tests and status)."""
        with self._lock:
            now = self._clock()
            return sum(1 for b in self._blocks for i in range(self._filled(b)) if self._live(b, i, now))

    def _filled(self, block: _Block) -> int:
        return min(BLOCK, self._sequence - block.first + 1)

    def _live(self, block: _Block, offset: int, now: float) -> bool:
        return (
            block.first + offset > self._sequence - self.max_decisions
            and now - block.decided_at[offset] <= self.max_age_s
        )

    def _decision(self, block: _Block, offset: int) -> Decision:
        forecast, latency, quality = block.forecast[offset], block.latency[offset], block.quality[offset]
        return Decision(
            decision_id=f"{self._prefix}{block.first + offset}",
            backend_id=self._backends.names[block.backend[offset]],
            decided_at=block.decided_at[offset],
            forecast_ms=None if math.isnan(forecast) else forecast,
            model_version=self._models.names[block.model[offset]],
            latency_ms=None if math.isnan(latency) else latency,
            quality=None if math.isnan(quality) else quality,
            as_of=block.as_of[offset],
        )

    def _find(self, decision_id: str, now: float) -> tuple[tuple[_Block, int] | None, str]:
        """The block and offset of a live decision, or None and why not."""
        instance, _, number = decision_id.rpartition("-")
        # Only the digits an id is issued with: str.isdigit() also takes "²",
        # which int() refuses, and int() takes other scripts' digits and
        # leading zeros, which would make other names for a decision.
        if not instance or not (number.isascii() and number.isdigit()) or number.startswith("0") or len(number) > 19:
            return None, f"decision_id: {decision_id!r} is not an id this router issues"
        if instance != self.instance:
            return None, (
                f"decision_id: {decision_id!r} was issued by another router instance (or before a restart); "
                f"this one is {self.instance!r}"
            )
        sequence = int(number)
        if sequence < 1 or sequence > self._sequence:
            return None, f"decision_id: {decision_id!r} was never issued"
        expired = (
            f"decision_id: {decision_id!r} has expired: the log keeps the latest {self.max_decisions} "
            f"decisions for at most {self.max_age_s:g} s"
        )
        if not self._blocks or sequence < self._blocks[0].first:
            return None, expired
        block = self._blocks[(sequence - self._blocks[0].first) // BLOCK]
        offset = sequence - block.first
        if not self._live(block, offset, now):
            return None, expired
        return (block, offset), ""

    def _drop_blocks(self, now: float) -> None:
        """Gives back the blocks whose every decision is past the count or
        the age bound; the newest block always stays."""
        blocks = self._blocks
        while len(blocks) > 1:
            head = blocks[0]
            last = head.first + BLOCK - 1
            if last > self._sequence - self.max_decisions and now - head.decided_at[BLOCK - 1] <= self.max_age_s:
                break
            blocks.popleft()

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
