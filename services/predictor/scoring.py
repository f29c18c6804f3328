"""Scores forecasts against what happened, per model version.

A forecast says: model `model_version`, looking at `backend_id` as of event
time `as_of`, expects the worst latency over the next `horizon_s` seconds to
be `predicted_ms`. Its truth is the trainer's label (services.trainer.dataset):
the largest latency_ms among the backend's points in (as_of, as_of +
horizon_s]. It is known once a point of that backend at or after as_of +
horizon_s + settle_s has arrived (event time, per backend); settle_s lets
points that arrive out of order still count. A forecast whose interval holds
no point gets no label (counted, as the trainer drops such rows).

Forecasts of different versions for the same (backend, as_of, horizon) share
one label, so two versions can be compared on exactly the same labels
(paired); that is what the promotion gate needs. Memory is bounded: pending
forecasts and points per backend, resolved labels per version, versions.
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# (backend_id, as_of, horizon_s): the identity of a label.
Key = tuple[str, float, float]


@dataclass(frozen=True)
class Forecast:
    model_version: str
    backend_id: str
    as_of: float  # event time of the features the forecast was made from, seconds
    horizon_s: float
    predicted_ms: float


@dataclass(frozen=True)
class Label:
    """A forecast with its truth."""

    model_version: str
    backend_id: str
    as_of: float
    horizon_s: float
    predicted_ms: float
    actual_ms: float  # worst latency_ms observed in (as_of, as_of + horizon_s]

    @property
    def key(self) -> Key:
        return (self.backend_id, self.as_of, self.horizon_s)

    @property
    def abs_error_ms(self) -> float:
        return abs(self.predicted_ms - self.actual_ms)

    @property
    def abs_log_error(self) -> float:
        """|log(1 + predicted) - log(1 + actual)|: the relative error, the
        scale the trainer fits on."""
        return abs(math.log1p(max(self.predicted_ms, 0.0)) - math.log1p(self.actual_ms))


@dataclass(frozen=True)
class Limits:
    # Forecasts waiting for their horizon, per backend, all versions together;
    # beyond it the oldest is dropped.
    max_pending_per_backend: int = 2_000
    # Points kept per backend to compute labels from; beyond it the oldest go.
    max_points_per_backend: int = 4_096
    # Labels kept per version, newest last; beyond it the oldest go.
    max_labels_per_version: int = 5_000
    # Versions scored at once; beyond it the one labelled least recently is forgotten.
    max_versions: int = 8
    # Metrics cover labels whose as_of is within this much event time of the
    # newest label's; 0 means every label kept.
    window_s: float = 3_600.0
    # How long after a horizon ends late points may still arrive, in event time.
    settle_s: float = 0.0
    # Event time of points kept behind each backend's newest one (at least
    # the longest horizon seen), so a forecast that reaches the scorer after
    # its horizon has passed can still be labelled.
    keep_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("max_pending_per_backend", "max_points_per_backend", "max_labels_per_version", "max_versions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("window_s", "settle_s", "keep_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")


@dataclass(frozen=True)
class Scores:
    """How one version did on a set of labels."""

    labels: int
    mae_ms: float  # NaN when there are no labels
    log_mae: float  # mean |log(1 + predicted) - log(1 + actual)|; NaN when no labels
    threshold_ms: float
    predicted_breaches: int  # forecasts >= threshold (the breaker would open)
    actual_breaches: int  # labels >= threshold
    true_breaches: int  # both
    # None when there is nothing to divide by (no breach forecast, or none happened).
    breach_precision: float | None
    breach_recall: float | None


@dataclass(frozen=True)
class Paired:
    """Two versions scored on the same labels: those both have."""

    first_version: str
    second_version: str
    first: Scores
    second: Scores
    # as_of of the newest shared label; -inf when there is none.
    newest_as_of: float = -math.inf

    @property
    def labels(self) -> int:
        return self.first.labels


@dataclass(frozen=True)
class Counts:
    pending: int  # forecasts waiting for their horizon
    dropped_pending: int  # pushed out by max_pending_per_backend
    too_old: int  # forecasts whose horizon's points are no longer all kept, never scored
    unlabelled: int  # horizons with no point in them
    duplicates: int  # forecasts already pending or labelled for that version


def score(labels: Sequence[Label], threshold_ms: float) -> Scores:
    n = len(labels)
    predicted = sum(1 for x in labels if x.predicted_ms >= threshold_ms)
    actual = sum(1 for x in labels if x.actual_ms >= threshold_ms)
    both = sum(1 for x in labels if x.predicted_ms >= threshold_ms and x.actual_ms >= threshold_ms)
    return Scores(
        labels=n,
        mae_ms=sum(x.abs_error_ms for x in labels) / n if n else math.nan,
        log_mae=sum(x.abs_log_error for x in labels) / n if n else math.nan,
        threshold_ms=threshold_ms,
        predicted_breaches=predicted,
        actual_breaches=actual,
        true_breaches=both,
        breach_precision=both / predicted if predicted else None,
        breach_recall=both / actual if actual else None,
    )


class _Backend:
    """One backend's points (sorted by time) and pending forecasts."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.latencies: list[float] = []
        self.newest = -math.inf  # event time of the newest point
        # Points before this were dropped: forecasts older cannot be scored.
        self.kept_from = -math.inf
        # (due, sequence, forecast): due = as_of + horizon_s + settle_s.
        self.pending: list[tuple[float, int, Forecast]] = []
        self.pending_keys: set[tuple[str, float, float]] = set()

    def add_point(self, at: float, latency_ms: float, max_points: int) -> None:
        i = bisect.bisect_left(self.times, at)
        if i < len(self.times) and self.times[i] == at:
            self.latencies[i] = latency_ms  # a duplicate replaces, as in the feature store
        else:
            self.times.insert(i, at)
            self.latencies.insert(i, latency_ms)
        self.newest = max(self.newest, at)
        if len(self.times) > max_points:
            cut = len(self.times) - max_points
            self.kept_from = self.times[cut - 1]
            del self.times[:cut], self.latencies[:cut]

    def truth(self, as_of: float, horizon_s: float) -> float | None:
        lo = bisect.bisect_right(self.times, as_of)
        hi = bisect.bisect_right(self.times, as_of + horizon_s)
        return max(self.latencies[lo:hi]) if hi > lo else None

    def prune(self, keep_from: float) -> None:
        """Drops points no pending or future forecast needs."""
        cut = bisect.bisect_right(self.times, keep_from)
        if cut:
            self.kept_from = max(self.kept_from, self.times[cut - 1])
            del self.times[:cut], self.latencies[:cut]


class Scorer:
    """Thread-safe: forecasts come from Predict calls, points from the
    telemetry feed, reads from the health RPC."""

    def __init__(self, limits: Limits | None = None, threshold_ms: float = 300.0) -> None:
        if not (math.isfinite(threshold_ms) and threshold_ms > 0):
            raise ValueError(f"threshold_ms: must be finite and > 0, got {threshold_ms!r}")
        self.limits = limits or Limits()
        self.threshold_ms = threshold_ms
        self._lock = threading.Lock()
        self._backends: dict[str, _Backend] = {}
        # version -> its labels by key, oldest first; versions in order of their last label.
        self._labels: OrderedDict[str, OrderedDict[Key, Label]] = OrderedDict()
        self._newest_as_of = -math.inf
        self._longest_horizon_s = 0.0
        self._sequence = 0
        self._dropped_pending = 0
        self._too_old = 0
        self._unlabelled = 0
        self._duplicates = 0

    def add_forecasts(self, forecasts: Iterable[Forecast]) -> list[Label]:
        """Registers forecasts; returns those whose horizon had already
        passed, labelled at once. A repeated forecast (same version and
        key) is ignored: routers retry, and replicas may ask alike."""
        out: list[Label] = []
        with self._lock:
            for f in forecasts:
                if not (math.isfinite(f.as_of) and math.isfinite(f.horizon_s) and f.horizon_s > 0):
                    raise ValueError(f"forecast: as_of and horizon_s must be finite, horizon_s > 0, got {f!r}")
                if not math.isfinite(f.predicted_ms):
                    raise ValueError(f"forecast: predicted_ms must be finite, got {f.predicted_ms!r}")
                self._longest_horizon_s = max(self._longest_horizon_s, f.horizon_s)
                b = self._backends.setdefault(f.backend_id, _Backend())
                key = (f.model_version, f.as_of, f.horizon_s)
                labelled = self._labels.get(f.model_version)
                if key in b.pending_keys or (labelled is not None and (f.backend_id, f.as_of, f.horizon_s) in labelled):
                    self._duplicates += 1
                    continue
                if f.as_of < b.kept_from:
                    self._too_old += 1
                    continue
                due = f.as_of + f.horizon_s + self.limits.settle_s
                if b.newest >= due:
                    self._resolve(b, f, out)
                    continue
                self._sequence += 1
                heapq.heappush(b.pending, (due, self._sequence, f))
                b.pending_keys.add(key)
                if len(b.pending) > self.limits.max_pending_per_backend:
                    self._drop_oldest_pending(b)
        return out

    def observe(self, points: Iterable[tuple[str, float, float]]) -> list[Label]:
        """Feeds telemetry points (backend_id, observed_at, latency_ms), in
        any order; returns the forecasts they labelled, oldest due first."""
        out: list[Label] = []
        with self._lock:
            touched: set[str] = set()
            for backend_id, at, latency_ms in points:
                if not (math.isfinite(at) and math.isfinite(latency_ms)):
                    raise ValueError(f"point: observed_at and latency_ms must be finite, got {at!r}, {latency_ms!r}")
                b = self._backends.setdefault(backend_id, _Backend())
                if at <= b.kept_from:
                    continue  # older than anything still needed
                b.add_point(at, latency_ms, self.limits.max_points_per_backend)
                touched.add(backend_id)
            for backend_id in sorted(touched):
                b = self._backends[backend_id]
                while b.pending and b.pending[0][0] <= b.newest:
                    _, _, f = heapq.heappop(b.pending)
                    b.pending_keys.discard((f.model_version, f.as_of, f.horizon_s))
                    self._resolve(b, f, out)
                # Points at or before this can label neither a pending
                # forecast nor one yet to come whose horizon is still open.
                oldest_pending = min((p[2].as_of for p in b.pending), default=math.inf)
                keep_s = max(self._longest_horizon_s, self.limits.keep_s) + self.limits.settle_s
                b.prune(min(oldest_pending, b.newest - keep_s))
        return out

    def _resolve(self, b: _Backend, f: Forecast, out: list[Label]) -> None:
        if f.as_of < b.kept_from:
            # max_points_per_backend pushed out points of its horizon: a
            # label from the rest could understate the truth.
            self._too_old += 1
            return
        actual = b.truth(f.as_of, f.horizon_s)
        if actual is None:
            self._unlabelled += 1
            return
        label = Label(f.model_version, f.backend_id, f.as_of, f.horizon_s, f.predicted_ms, actual)
        labels = self._labels.get(f.model_version)
        if labels is None:
            labels = self._labels[f.model_version] = OrderedDict()
            if len(self._labels) > self.limits.max_versions:
                self._labels.popitem(last=False)
        self._labels.move_to_end(f.model_version)
        labels[label.key] = label
        if len(labels) > self.limits.max_labels_per_version:
            labels.popitem(last=False)
        self._newest_as_of = max(self._newest_as_of, f.as_of)
        out.append(label)

    def _drop_oldest_pending(self, b: _Backend) -> None:
        oldest = min(range(len(b.pending)), key=lambda i: (b.pending[i][2].as_of, b.pending[i][1]))
        _, _, f = b.pending.pop(oldest)
        heapq.heapify(b.pending)
        b.pending_keys.discard((f.model_version, f.as_of, f.horizon_s))
        self._dropped_pending += 1

    def _recent(self, version: str) -> dict[Key, Label]:
        labels = self._labels.get(version)
        if not labels:
            return {}
        if not self.limits.window_s:
            return dict(labels)
        since = self._newest_as_of - self.limits.window_s
        return {k: x for k, x in labels.items() if x.as_of >= since}

    def versions(self) -> list[str]:
        """The versions with labels, the one labelled most recently last."""
        with self._lock:
            return list(self._labels)

    def labels(self, version: str) -> list[Label]:
        """The version's labels in the score window, oldest first."""
        with self._lock:
            return list(self._recent(version).values())

    def scores(self, version: str) -> Scores:
        """The version's recent labels, scored; zero labels for a version
        never labelled."""
        with self._lock:
            return score(list(self._recent(version).values()), self.threshold_ms)

    def paired(self, first: str, second: str, since: float = -math.inf) -> Paired:
        """Both versions scored on the recent labels they share, only those
        with as_of after `since` (a block of labels not judged before)."""
        with self._lock:
            a = self._recent(first)
            b = self._recent(second)
            shared = [k for k in a if k in b and a[k].as_of > since]
            return Paired(
                first,
                second,
                score([a[k] for k in shared], self.threshold_ms),
                score([b[k] for k in shared], self.threshold_ms),
                max((a[k].as_of for k in shared), default=-math.inf),
            )

    def forget(self, version: str) -> None:
        with self._lock:
            self._labels.pop(version, None)

    def counts(self) -> Counts:
        with self._lock:
            return Counts(
                pending=sum(len(b.pending) for b in self._backends.values()),
                dropped_pending=self._dropped_pending,
                too_old=self._too_old,
                unlabelled=self._unlabelled,
                duplicates=self._duplicates,
            )


class Spacing:
    """Lets through, per backend, only labels whose horizons do not overlap
    the last one let through. Labels 10 s apart over a 300 s horizon share
    most of their points, so their errors move together; a drift detector
    fed all of them sees a run of correlated values as a change (measured:
    20.9 false alarms per 10,000 AR(1) values with phi 0.9, none for
    independent ones). Spaced labels are close to independent."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}

    def admit(self, label: Label) -> bool:
        key = (label.model_version, label.backend_id)
        last = self._last.get(key)
        if last is not None and label.as_of < last + label.horizon_s:
            return False
        self._last[key] = label.as_of
        return True
