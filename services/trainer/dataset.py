"""Rows to learn from: each backend's history replayed in event-time order
through the same Window and feature code the feature store runs online, each
row labelled with the worst latency of the horizon that follows it, and
optionally weighted by the quality scores routed requests got in that
horizon (with_quality)."""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from services.common import features
from services.common.telemetry import Point
from services.common.window import LATENCY, TIME, Window, WindowLimits

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Dataset:
    """Labelled rows sorted by event time, then backend id."""

    X: Floats  # (rows, N_FEATURES): features.compute as of each row's point
    y: Floats  # worst latency_ms in (time, time + horizon_s]
    times: Floats  # event time of the row's point, seconds since the epoch
    backend_ids: npt.NDArray[np.str_]
    current_latency_ms: Floats  # latency of the row's own point
    horizon_s: float
    # Points that got no row: their backend's history ends before their
    # horizon does, or no point of theirs falls inside the horizon.
    unlabelled: int
    # Per row, how much it counts in the fit; None: every row counts 1.
    weights: Floats | None = None

    def __len__(self) -> int:
        return len(self.y)


def build(points: Iterable[Point], horizon_s: float, limits: WindowLimits) -> Dataset:
    """Rows of every backend in the points, in any order. Points of one
    backend at the same time keep the last one given, as the Window does."""
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"horizon_s: must be a finite number > 0, got {horizon_s!r}")
    by_backend: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for p in points:
        by_backend[p.backend_id].append((p.observed_at, p.load, p.latency_ms, p.error_rate))
    parts = [_backend_rows(backend_id, rows, horizon_s, limits) for backend_id, rows in sorted(by_backend.items())]
    if not parts:
        return _empty(horizon_s)
    X = np.concatenate([part[0] for part in parts])
    y = np.concatenate([part[1] for part in parts])
    times = np.concatenate([part[2] for part in parts])
    backend_ids = np.concatenate(
        [np.full(len(part[1]), backend_id) for backend_id, part in zip(sorted(by_backend), parts, strict=True)]
    )
    unlabelled = sum(part[3] for part in parts)
    # Backends were concatenated in id order, so a stable sort by time keeps
    # ties ordered by backend id.
    order = np.argsort(times, kind="stable")
    return Dataset(
        X=X[order],
        y=y[order],
        times=times[order],
        backend_ids=backend_ids[order],
        current_latency_ms=X[order, features.LATENCY_INDEX],
        horizon_s=horizon_s,
        unlabelled=unlabelled,
    )


def _empty(horizon_s: float) -> Dataset:
    none = np.empty(0, dtype=np.float64)
    return Dataset(
        X=np.empty((0, features.N_FEATURES), dtype=np.float64),
        y=none,
        times=none,
        backend_ids=np.empty(0, dtype=np.str_),
        current_latency_ms=none,
        horizon_s=horizon_s,
        unlabelled=0,
    )


def _backend_rows(
    backend_id: str, raw: list[tuple[float, float, float, float]], horizon_s: float, limits: WindowLimits
) -> tuple[Floats, Floats, Floats, int]:
    """(X, y, times, unlabelled) of one backend."""
    points = _sorted_unique(np.asarray(raw, dtype=np.float64))
    labels = future_max(points[:, TIME], points[:, LATENCY], horizon_s)
    labelled = ~np.isnan(labels)
    X = np.empty((int(labelled.sum()), features.N_FEATURES), dtype=np.float64)
    window = Window(limits)
    row = 0
    # Points after the last labelled one shape no labelled row's window.
    stop = int(np.flatnonzero(labelled)[-1]) + 1 if len(X) else 0
    for (t, load, latency, error), keep in zip(points[:stop].tolist(), labelled[:stop].tolist(), strict=True):
        window.add(t, load, latency, error)
        if keep:
            X[row] = features.compute(window)
            row += 1
    return X, labels[labelled], points[labelled, TIME], len(points) - len(X)


def _sorted_unique(points: Floats) -> Floats:
    """Sorted by time; of points at the same time the last given wins."""
    points = points[np.argsort(points[:, TIME], kind="stable")]
    t = points[:, TIME]
    last_of_run: npt.NDArray[np.bool_] = np.append(t[1:] != t[:-1], True)
    unique: Floats = points[last_of_run]
    return unique


def future_max(times: Floats, values: Floats, horizon_s: float) -> Floats:
    """For each i, max(values[j]) over times[j] in (times[i], times[i] +
    horizon_s], NaN when the series ends before times[i] + horizon_s or
    nothing falls in the interval. times must be sorted and distinct.

    One pass with a deque of candidate indices whose values decrease: both
    ends of the interval only move forward, so each index enters and leaves
    once."""
    n = len(times)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    # Plain lists: indexing them in the loop is several times faster than
    # indexing arrays.
    ends: list[int] = np.searchsorted(times, times + horizon_s, side="right").tolist()
    t: list[float] = times.tolist()
    v: list[float] = values.tolist()
    candidates: deque[int] = deque()
    added = 0
    for i in range(n):
        if t[i] + horizon_s > t[-1]:
            break  # times are sorted: no later row has a full horizon either
        while added < ends[i]:
            while candidates and v[candidates[-1]] <= v[added]:
                candidates.pop()
            candidates.append(added)
            added += 1
        while candidates and candidates[0] <= i:
            candidates.popleft()
        if candidates:
            out[i] = v[candidates[0]]
    return out


@dataclass(frozen=True)
class QualityBucket:
    """Quality scores of the requests routed to one backend and decided in
    one bucket of event time (a FeatureStore OutcomeSummary)."""

    backend_id: str
    start: float  # event time, seconds since the epoch
    count: int
    total: float  # sum of the scores, each in [0, 1]


def horizon_quality(data: Dataset, buckets: Iterable[QualityBucket]) -> Floats:
    """Per row, the mean quality score of its backend's requests decided in
    (time, time + horizon_s], the horizon its label covers; NaN where none
    was reported. Buckets of the same backend and start add up."""
    out = np.full(len(data), np.nan)
    by_backend: dict[str, list[tuple[float, int, float]]] = defaultdict(list)
    for b in buckets:
        if b.count > 0:
            by_backend[b.backend_id].append((b.start, b.count, b.total))
    for backend_id, rows in by_backend.items():
        mine = np.flatnonzero(data.backend_ids == backend_id)
        if not len(mine):
            continue
        arr = np.asarray(sorted(rows), dtype=np.float64)
        counts = np.concatenate([[0.0], np.cumsum(arr[:, 1])])
        totals = np.concatenate([[0.0], np.cumsum(arr[:, 2])])
        t = data.times[mine]
        lo = np.searchsorted(arr[:, 0], t, side="right")
        hi = np.searchsorted(arr[:, 0], t + data.horizon_s, side="right")
        n = counts[hi] - counts[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[mine] = np.where(n > 0, (totals[hi] - totals[lo]) / n, np.nan)
    return out


def with_quality(data: Dataset, buckets: Iterable[QualityBucket], weight: float) -> Dataset:
    """The rows weighted 1 + weight x (1 - mean quality in their horizon):
    a row whose horizon saw requests served badly counts more, a row with no
    quality reported counts 1. Quality can fall before latency breaches (an
    overloaded backend answers worse before it answers slower), so these
    rows are the ones ahead of a breach, where a forecaster that misses it
    costs most. The label stays the latency; only the emphasis changes."""
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight: must be a finite number >= 0, got {weight!r}")
    quality = horizon_quality(data, buckets)
    weights = np.where(np.isnan(quality), 1.0, 1.0 + weight * (1.0 - np.nan_to_num(quality, nan=1.0)))
    return replace(data, weights=np.asarray(weights, dtype=np.float64))


def weighted_rows(data: Dataset) -> int:
    """Rows that count more than 1."""
    return 0 if data.weights is None else int((data.weights > 1.0).sum())
