"""A bounded, event-time-ordered window of one backend's telemetry. The
feature store keeps one per backend and the trainer replays history through
the same class, so both see exactly the same windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Column order of the buffer.
TIME, LOAD, LATENCY, ERROR = range(4)


@dataclass(frozen=True)
class WindowLimits:
    # Points older than this many seconds before the newest point are dropped.
    span_s: float = 300.0
    # At most this many points are held; the oldest go first.
    max_points: int = 256


class Window:
    """Points sorted by event time, held in one preallocated float64 array
    (32 bytes a point) so that ten thousand full windows stay small."""

    __slots__ = ("_buf", "_end", "_start", "limits")

    def __init__(self, limits: WindowLimits) -> None:
        self.limits = limits
        # Twice the cap, so appends are amortised O(1): the live rows slide
        # right and are moved back to the front only when the end is reached.
        self._buf = np.empty((2 * limits.max_points, 4), dtype=np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def rows(self) -> npt.NDArray[np.float64]:
        """The live points, oldest first (a view: do not keep it across adds)."""
        return self._buf[self._start : self._end]

    @property
    def covered_s(self) -> float:
        """Event time between the oldest and the newest point held: how much
        of the backend's recent past the window describes, whatever its
        reporting interval (0 for fewer than two points)."""
        if self._end - self._start < 2:
            return 0.0
        return float(self._buf[self._end - 1, TIME] - self._buf[self._start, TIME])

    @property
    def newest_time(self) -> float | None:
        return float(self._buf[self._end - 1, TIME]) if self._end > self._start else None

    def is_too_old(self, observed_at: float) -> bool:
        """Whether a point at this time would fall outside the window at once."""
        newest = self.newest_time
        return newest is not None and observed_at < newest - self.limits.span_s

    def add(self, observed_at: float, load: float, latency_ms: float, error_rate: float) -> bool:
        """Adds a point in event-time order; a point at a time already held
        replaces it. Returns False, changing nothing, when the point is older
        than the window."""
        if self.is_too_old(observed_at):
            return False
        row = (observed_at, load, latency_ms, error_rate)
        newest = self.newest_time
        if newest is None or observed_at > newest:
            self._append(row)
        else:
            self._insert(row)
        self._evict()
        return True

    def _append(self, row: tuple[float, float, float, float]) -> None:
        if self._end == len(self._buf):
            self._compact()
        self._buf[self._end] = row
        self._end += 1

    def _insert(self, row: tuple[float, float, float, float]) -> None:
        times = self._buf[self._start : self._end, TIME]
        at = int(np.searchsorted(times, row[TIME]))
        if at < len(times) and times[at] == row[TIME]:
            self._buf[self._start + at] = row
            return
        if self._end == len(self._buf):
            self._compact()
        pos = self._start + at
        self._buf[pos + 1 : self._end + 1] = self._buf[pos : self._end].copy()
        self._buf[pos] = row
        self._end += 1

    def _compact(self) -> None:
        n = len(self)
        self._buf[:n] = self._buf[self._start : self._end].copy()
        self._start, self._end = 0, n

    def _evict(self) -> None:
        newest = self._buf[self._end - 1, TIME]
        times = self._buf[self._start : self._end, TIME]
        first_kept = int(np.searchsorted(times, newest - self.limits.span_s, side="left"))
        self._start += first_kept
        overflow = len(self) - self.limits.max_points
        if overflow > 0:
            self._start += overflow
