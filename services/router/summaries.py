"""Accepted outcomes summed per backend and bucket of event time, waiting to
be sent to the feature store (FeatureStore.IngestOutcomes).

Summaries, not single outcomes: the trainer needs each backend's quality
over time, and one record per backend and bucket is what the feature
store's history budget can hold at hundreds of decisions a second. Counts
and sums, so that summaries of the same bucket sent at different times (a
quality score hours after the latency) add up on the reading side.

A decision with no telemetry behind it (as_of 0) has no event time to be
placed at; its outcomes are counted, not sent. Pending summaries are
bounded: beyond max_pending buckets the oldest are dropped and counted.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from services.common.outcome_summary import Summary
from services.router.outcomes import DecisionLog, Receipt, Recorded

BUCKET_S = 10.0


class _Sums:
    __slots__ = ("l_count", "l_max", "l_sum", "q_count", "q_sum")

    def __init__(self) -> None:
        self.q_count = self.l_count = 0
        self.q_sum = self.l_sum = self.l_max = 0.0


class Summaries:
    """Thread-safe."""

    def __init__(self, bucket_s: float = BUCKET_S, max_pending: int = 100_000) -> None:
        if not (math.isfinite(bucket_s) and bucket_s > 0):
            raise ValueError(f"bucket_s: must be finite and > 0, got {bucket_s!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending: must be >= 1, got {max_pending!r}")
        self.bucket_s = bucket_s
        self.max_pending = max_pending
        self._lock = threading.Lock()
        # Insertion order is age order, so the oldest is dropped first.
        self._pending: dict[tuple[str, float], _Sums] = {}
        self.unplaced = 0  # outcomes of decisions without telemetry
        self.dropped = 0  # buckets dropped for the bound

    def add(self, r: Recorded) -> None:
        if r.as_of <= 0:
            with self._lock:
                self.unplaced += 1
            return
        key = (r.backend_id, math.floor(r.as_of / self.bucket_s) * self.bucket_s)
        with self._lock:
            sums = self._pending.get(key)
            if sums is None:
                if len(self._pending) >= self.max_pending:
                    del self._pending[next(iter(self._pending))]
                    self.dropped += 1
                sums = self._pending[key] = _Sums()
            if r.quality is not None:
                sums.q_count += 1
                sums.q_sum += r.quality
            if r.latency_ms is not None:
                sums.l_count += 1
                sums.l_sum += r.latency_ms
                sums.l_max = max(sums.l_max, r.latency_ms)

    def take(self, limit: int) -> list[Summary]:
        """Up to `limit` pending summaries, oldest first, removed from the pending ones."""
        with self._lock:
            keys: list[tuple[str, float]] = []
            for key in self._pending:
                if len(keys) >= limit:
                    break
                keys.append(key)
            taken = [(key, self._pending.pop(key)) for key in keys]
        return [
            Summary(b, start, self.bucket_s, s.q_count, s.q_sum, s.l_count, s.l_sum, s.l_max) for (b, start), s in taken
        ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


@dataclass(frozen=True)
class Report:
    """One outcome as the proxy reports it."""

    decision_id: str
    latency_ms: float | None = None
    quality: float | None = None
    failed: bool = False


def report_all(log: DecisionLog, summaries: Summaries, reports: list[Report]) -> list[Receipt]:
    """Each report joined to its decision on its own; what is accepted is
    added to the summaries for the feature store. One receipt per report."""
    receipts = []
    for r in reports:
        receipt = log.report(r.decision_id, latency_ms=r.latency_ms, quality=r.quality, failed=r.failed)
        if receipt.recorded is not None:
            summaries.add(receipt.recorded)
        receipts.append(receipt)
    return receipts
