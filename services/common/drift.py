"""Page-Hinkley change detection over a stream of values: the live forecast
error (did the model get worse?) or one input feature (has the fleet moved
away from what the model learnt?).

For each value x_t the detector keeps the running mean of the values since
its last reset and the cumulative deviation

    up_t   = alpha * up_(t-1)   + (x_t - mean_t - delta)
    down_t = alpha * down_(t-1) + (x_t - mean_t + delta)

and fires when up_t has risen more than `threshold` (lambda) above its
lowest value, or, in both directions, down_t has fallen more than
`threshold` below its highest. `delta` is the size of change the detector
tolerates, in the values' unit; `threshold` trades detection delay against
false alarms; `alpha` < 1 makes old deviations fade (1: none, the classic
test). After firing it starts afresh, so the new level becomes the baseline
and it fires again only on a further change.

The update rule is river's drift.PageHinkley (river 0.26.1): on the same
stream and settings both fire at the same samples (checked when this module
was written: 80 seeded streams, no mismatch). It is written here rather than
imported because it is thirty lines, and river would add an 11 MB online-ML
library to the service image for one class whose state (the sums, the mean)
it keeps private, while the logs and the health RPC need that state.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Direction(enum.Enum):
    # Only a rise of the mean counts. For forecast error: a fall is good
    # news and no reason to retrain.
    UP = "UP"
    # A rise or a fall counts. For an input feature: load that drops off is
    # as far outside what the model learnt as load that climbs.
    BOTH = "BOTH"


@dataclass(frozen=True)
class PageHinkleySettings:
    delta: float  # tolerated change of the mean, in the values' unit
    threshold: float  # lambda: how far the cumulative deviation may move before firing
    alpha: float = 1.0  # forgetting factor of the cumulative deviations; 1 means none
    min_samples: int = 30  # values since the last reset before it may fire
    direction: Direction = Direction.UP

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delta) and self.delta >= 0):
            raise ValueError(f"delta: must be finite and >= 0, got {self.delta!r}")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold: must be finite and > 0, got {self.threshold!r}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha: must be in (0, 1], got {self.alpha!r}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples: must be >= 1, got {self.min_samples!r}")


@dataclass(frozen=True)
class DriftState:
    """What the detector knows, for logs and the health RPC."""

    samples: int  # values since the last reset
    mean: float  # their mean; 0 before the first
    up_sum: float
    down_sum: float
    # How far the deviation has moved from its extreme, the figure compared
    # with the threshold (the larger of the two directions when BOTH).
    statistic: float
    fires: int  # times it fired since it was made (reset() keeps the count)
    fired_at: float | None  # the `at` of the value that made it fire last


class PageHinkley:
    def __init__(self, settings: PageHinkleySettings) -> None:
        self.settings = settings
        self._fires = 0
        self._fired_at: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forgets the values seen, so the next ones form the baseline.
        Keeps the record of past firings."""
        self._n = 0
        self._mean = 0.0
        self._up = 0.0
        self._up_min = math.inf
        self._down = 0.0
        self._down_max = -math.inf

    def update(self, value: float, at: float = 0.0) -> bool:
        """Feeds one value; True when it made the detector fire. `at` (an
        event time, or a sample number) is only recorded as fired_at.
        ValueError for a value that is not finite."""
        if not math.isfinite(value):
            raise ValueError(f"value: must be finite, got {value!r}")
        s = self.settings
        self._n += 1
        self._mean += (value - self._mean) / self._n
        deviation = value - self._mean
        self._up = s.alpha * self._up + deviation - s.delta
        self._down = s.alpha * self._down + deviation + s.delta
        self._up_min = min(self._up_min, self._up)
        self._down_max = max(self._down_max, self._down)
        if self._n < s.min_samples or self._statistic() <= s.threshold:
            return False
        self._fires += 1
        self._fired_at = at
        self.reset()
        return True

    def _statistic(self) -> float:
        if self._n == 0:
            return 0.0
        up = self._up - self._up_min
        if self.settings.direction is Direction.UP:
            return up
        return max(up, self._down_max - self._down)

    def state(self) -> DriftState:
        return DriftState(
            samples=self._n,
            mean=self._mean,
            up_sum=self._up,
            down_sum=self._down,
            statistic=self._statistic(),
            fires=self._fires,
            fired_at=self._fired_at,
        )
