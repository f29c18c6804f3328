"""The feature store's state: one event-time window per backend, the feature
vector of each (computed on demand and cached until the window changes) and
the change feed that tells watchers which backends changed."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog

from services.common import features
from services.common.changes import ChangeFeed, Subscription
from services.common.errors import NotFound
from services.common.telemetry import Point, problem
from services.common.timeutil import iso
from services.common.window import Window, WindowLimits
from services.feature_store.history import History

_log = structlog.get_logger("feature_store")


@dataclass(frozen=True)
class Rejection:
    index: int  # position in the batch or stream, from 0
    reason: str  # the field and the rule it broke


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # points stored, replacements of duplicates included
    rejected: tuple[Rejection, ...]  # in index order
    capped: int = 0  # of the rejected, points of new backends refused for the backend cap


@dataclass(frozen=True)
class BackendVector:
    backend_id: str
    values: npt.NDArray[np.float64]  # read-only, in features.FEATURE_NAMES order
    as_of: float  # event time of the newest point in the window, seconds
    points_in_window: int
    # Event time between the window's oldest and newest points, seconds:
    # what the router's warmth is judged by, at any reporting interval.
    covered_s: float


class _Backend:
    __slots__ = ("vector", "window")

    def __init__(self, limits: WindowLimits) -> None:
        self.window = Window(limits)
        self.vector: BackendVector | None = None  # None until asked for after a change


class Store:
    """Thread-safe. One lock guards the windows; it is held for window
    updates and vector computation only, never for validation, logging or
    anything a client controls the pace of."""

    def __init__(self, limits: WindowLimits, max_backends: int, history: History | None = None) -> None:
        self.limits = limits
        self.max_backends = max_backends
        # Every accepted point is appended to it, outside the window lock.
        self.history = history
        self._backends: dict[str, _Backend] = {}
        self._lock = threading.Lock()
        self._changes = ChangeFeed()
        self._closed = False
        self._cap_reached = False

    @property
    def backend_count(self) -> int:
        with self._lock:
            return len(self._backends)

    @property
    def watchers(self) -> int:
        """Subscriptions open now (WatchFeatures streams)."""
        return self._changes.subscribers

    def window_fill(self) -> list[tuple[str, int]]:
        """(backend_id, points in its window) for every backend, unsorted."""
        with self._lock:
            return [(backend_id, len(b.window)) for backend_id, b in self._backends.items()]

    @property
    def closed(self) -> bool:
        return self._closed

    def ingest(self, points: Sequence[Point | str], first_index: int = 0) -> IngestResult:
        """Stores each valid point; a str entry is a reason the caller already
        found to reject that point. Rejection indexes start at first_index,
        so a stream can be fed in pieces."""
        rejected: list[Rejection] = []
        valid: list[tuple[int, Point]] = []
        for i, point in enumerate(points, start=first_index):
            if isinstance(point, str):
                rejected.append(Rejection(i, point))
                continue
            reason = problem(point)
            if reason is None:
                valid.append((i, point))
            else:
                rejected.append(Rejection(i, reason))
        if not valid:
            return IngestResult(0, tuple(rejected))

        late: list[Rejection] = []  # rejected by the state of the store, not the point alone
        added: list[str] = []
        changed: set[str] = set()
        stored: list[Point] = []
        cap_now_reached = False
        capped = 0
        with self._lock:
            for i, point in valid:
                backend = self._backends.get(point.backend_id)
                if backend is None:
                    if len(self._backends) >= self.max_backends:
                        late.append(Rejection(i, f"backend_id: backend cap of {self.max_backends} reached"))
                        capped += 1
                        cap_now_reached = cap_now_reached or not self._cap_reached
                        self._cap_reached = True
                        continue
                    backend = self._backends[point.backend_id] = _Backend(self.limits)
                    added.append(point.backend_id)
                window = backend.window
                if not window.add(point.observed_at, point.load, point.latency_ms, point.error_rate):
                    late.append(Rejection(i, self._too_old(point, window)))
                    continue
                backend.vector = None
                changed.add(point.backend_id)
                stored.append(point)
            total = len(self._backends)

        self._changes.publish(changed)
        if self.history is not None:
            self.history.append(stored)

        for backend_id in added:
            _log.info("backend_added", backend_id=backend_id, backends=total)
        if cap_now_reached:
            _log.warning("backend_cap_reached", max_backends=self.max_backends)
        if late:
            rejected = sorted(rejected + late, key=lambda r: r.index) if rejected else late
        return IngestResult(len(valid) - len(late), tuple(rejected), capped)

    def _too_old(self, point: Point, window: Window) -> str:
        newest = window.newest_time
        assert newest is not None  # only a non-empty window rejects a point as too old
        return (
            f"observed_at: older than the window ({iso(point.observed_at)} is more than "
            f"{self.limits.span_s:g} s before the newest point of {point.backend_id}, {iso(newest)})"
        )

    def vectors(self, backend_ids: Sequence[str] = ()) -> list[BackendVector]:
        """The vectors of the named backends, or of every backend when none
        are named, sorted by backend_id; a name given twice is returned once.
        Raises NotFound naming the first unknown backend."""
        with self._lock:
            if backend_ids:
                for i, backend_id in enumerate(backend_ids):
                    if backend_id not in self._backends:
                        raise NotFound(f"backend_ids[{i}]: unknown backend {backend_id!r}")
                ids: Iterable[str] = set(backend_ids)
            else:
                ids = self._backends
            return [self._vector(backend_id) for backend_id in sorted(ids)]

    def _vector(self, backend_id: str) -> BackendVector:
        backend = self._backends[backend_id]
        if backend.vector is None:
            window = backend.window
            values = features.compute(window)
            values.flags.writeable = False  # shared by every caller until the window changes
            newest = window.newest_time
            assert newest is not None  # a tracked backend always holds its newest point
            backend.vector = BackendVector(backend_id, values, newest, len(window), window.covered_s)
        return backend.vector

    def subscribe(self) -> Subscription:
        """A feed of the ids of the backends that change from now on; its
        wait returns None once it or the store is closed."""
        with self._lock:
            subscription = self._changes.subscribe()
            if self._closed:
                subscription.close()
        return subscription

    def close(self) -> None:
        """Ends every subscription, now and to come, so that watch streams
        return and a server can stop. Ingest and reads keep working."""
        with self._lock:
            self._closed = True
        self._changes.close()
