"""The one definition of ACE's features. The feature store computes them
online and the trainer offline, both from a Window, so training and serving
cannot disagree. Changing a feature means a new SCHEMA_VERSION: models carry
the schema they were trained on and the predictor refuses any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from services.common.window import ERROR, LATENCY, LOAD, TIME, Window

SCHEMA_VERSION = "ace.features.v1"

# Rates of change are slopes fitted over this much recent event time: long
# enough to smooth noise, short enough to see a ramp start. The fit always
# reaches back to the point before the newest, so telemetry every 60 s (or
# a late scrape) still gives a slope instead of 0 for want of a second point.
RATE_SPAN_S = 60.0
# The fewest points for which every feature is defined: slopes and the
# spread need two. The router counts a backend cold below it, whatever time
# its window covers.
MIN_POINTS = 2

FEATURE_NAMES: tuple[str, ...] = (
    "load",  # newest offered load, requests/s
    "latency_ms",  # newest latency
    "error_rate",  # newest error fraction
    "load_rate_per_s",  # slope of load over the last RATE_SPAN_S (two points at least), (requests/s)/s
    "latency_rate_ms_per_s",  # slope of latency over the last RATE_SPAN_S (two points at least), ms/s
    "load_trend_per_s",  # slope of load over the whole window
    "load_mean",  # mean load over the window
    "latency_mean_ms",  # mean latency over the window
    "latency_max_ms",  # worst latency over the window
    "latency_std_ms",  # spread of latency over the window
    "latency_per_load_ms",  # slope of latency against load over the window: how close to the knee
)
N_FEATURES = len(FEATURE_NAMES)
# The newest latency: what the router's breakers fall back on without a
# forecast, and what the learning loop's labels are made of.
LATENCY_INDEX = FEATURE_NAMES.index("latency_ms")


def latency_index(names: Sequence[str] = ()) -> int | None:
    """Where the newest latency sits in vectors of these features (the names
    a WatchFeatures message carries); this schema's place when the message
    names none, None when its names hold no latency."""
    if not names:
        return LATENCY_INDEX
    return list(names).index("latency_ms") if "latency_ms" in names else None


def _slope(cov: float, var: float) -> float:
    """Least-squares slope from a centred covariance and variance; 0 when x
    does not vary (or there are fewer than two points)."""
    return 0.0 if var <= 1e-12 else cov / var


def compute(window: Window) -> npt.NDArray[np.float64]:
    """The feature vector of a non-empty window, as of its newest point.

    Every mean, spread and slope comes from two centred Gram matrices (the
    whole window and its last RATE_SPAN_S), about a dozen numpy calls in all:
    on windows this small numpy's cost is per call, not per point, and the
    feature store computes a vector for every backend that changes."""
    rows = window.rows
    n = len(rows)
    if n == 0:
        raise ValueError("cannot compute features of an empty window")
    newest = rows[-1].tolist()
    # Column sums as a product with ones: a fifth of the cost of sum(axis=0).
    ones = np.ones(n)
    mean = (ones @ rows) / n
    centred = rows - mean
    # [i][j] is the sum over points of (column i - its mean)(column j - its mean).
    g = (centred.T @ centred).tolist()
    start = min(int(np.searchsorted(rows[:, TIME], newest[TIME] - RATE_SPAN_S, side="left")), max(n - 2, 0))
    recent = rows[start:, : LATENCY + 1]
    recent_centred = recent - (ones[start:] @ recent) / (n - start)
    r = (recent_centred.T @ recent_centred).tolist()
    out = np.empty(N_FEATURES, dtype=np.float64)
    out[0] = newest[LOAD]
    out[1] = newest[LATENCY]
    out[2] = newest[ERROR]
    out[3] = _slope(r[TIME][LOAD], r[TIME][TIME])
    out[4] = _slope(r[TIME][LATENCY], r[TIME][TIME])
    out[5] = _slope(g[TIME][LOAD], g[TIME][TIME])
    out[6] = mean[LOAD]
    out[7] = mean[LATENCY]
    out[8] = rows[:, LATENCY].max()
    out[9] = math.sqrt(max(g[LATENCY][LATENCY], 0.0) / n)
    out[10] = _slope(g[LOAD][LATENCY], g[LOAD][LOAD])
    return out
