"""One number per model version and fleet: the forecast at which a breach
becomes likely enough to act on.

A forecast is a point estimate of the horizon's worst latency, and on a
fleet the model did not learn its scale is off: the model `make up` ships
forecast breaches three times as often as they came on a fleet it had not
seen (reports/fleet.md). From the labels the learning loop already scores,
the cut-off is the lowest forecast c at which the forecasts at or over c
were followed by a breach at least `target_precision` of the time; the
forecasts are then scaled by threshold / c (at most 1: the loop only ever
scales down), so a breaker that compares them with the threshold opens
where the raw forecast reaches c: a breach probability compared with a cost
ratio, read off the fleet's own record."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

# A breach forecast should come true four times in five: issue 14's
# precision target for a model that has learnt the fleet.
TARGET_PRECISION = 0.8
# Fewest forecasts at or over a cut-off for its precision to count.
MIN_OVER = 20


def cutoff(
    forecasts: Floats,
    actual_ms: Floats,
    threshold_ms: float,
    target_precision: float = TARGET_PRECISION,
    min_over: int = MIN_OVER,
) -> float | None:
    """The lowest forecast at which the forecasts at or over it were
    followed by a breach (actual >= threshold) at least target_precision of
    the time, counting only cut-offs with min_over forecasts or more; when
    none reaches the target, the most precise such cut-off. None with fewer
    than min_over forecasts in all."""
    if len(forecasts) < min_over:
        return None
    order = np.argsort(-forecasts, kind="stable")
    f, hit = forecasts[order], actual_ms[order] >= threshold_ms
    counts = np.arange(1, len(f) + 1)
    precision = np.cumsum(hit) / counts
    counted = counts >= min_over
    good = np.flatnonzero(counted & (precision >= target_precision))
    if len(good):
        return float(f[good[-1]])
    candidates = np.flatnonzero(counted)
    return float(f[candidates[np.argmax(precision[candidates])]])


def fit_scale(forecasts: Floats, actual_ms: Floats, threshold_ms: float, last: float) -> float:
    """threshold / the cut-off, at most 1: an over-forecasting model is
    reined in, one whose breach forecasts come true more often than the
    target is left as bold as it is (scaled up, the make-up model opened
    two false alarms in `make run` that it did not raw). `last` when no
    cut-off can be fitted."""
    c = cutoff(forecasts, actual_ms, threshold_ms)
    return last if c is None or c <= 0 else min(1.0, threshold_ms / c)
