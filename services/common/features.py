"""The one definition of ACE's features. The feature store computes them
online and the trainer offline, both from a Window, so training and serving
cannot disagree. Changing a feature means a new SCHEMA_VERSION: models carry
the schema they were trained on and the predictor refuses any other.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.common.window import ERROR, LATENCY, LOAD, TIME, Window

SCHEMA_VERSION = "ace.features.v1"

# Rates of change are slopes fitted over this much recent event time: long
# enough to smooth noise, short enough to see a ramp start.
RATE_SPAN_S = 60.0

FEATURE_NAMES: tuple[str, ...] = (
    "load",  # newest offered load, requests/s
    "latency_ms",  # newest latency
    "error_rate",  # newest error fraction
    "load_rate_per_s",  # slope of load over the last RATE_SPAN_S, (requests/s)/s
    "latency_rate_ms_per_s",  # slope of latency over the last RATE_SPAN_S, ms/s
    "load_trend_per_s",  # slope of load over the whole window
    "load_mean",  # mean load over the window
    "latency_mean_ms",  # mean latency over the window
    "latency_max_ms",  # worst latency over the window
    "latency_std_ms",  # spread of latency over the window
    "latency_per_load_ms",  # slope of latency against load over the window: how close to the knee
)
N_FEATURES = len(FEATURE_NAMES)


def _slope(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """Least-squares slope of y on x; 0 when x does not vary."""
    if len(x) < 2:
        return 0.0
    dx = x - x.mean()
    var = float(dx @ dx)
    if var <= 1e-12:
        return 0.0
    return float(dx @ (y - y.mean())) / var


def compute(window: Window) -> npt.NDArray[np.float64]:
    """The feature vector of a non-empty window, as of its newest point."""
    rows = window.rows
    if len(rows) == 0:
        raise ValueError("cannot compute features of an empty window")
    t = rows[:, TIME]
    load = rows[:, LOAD]
    latency = rows[:, LATENCY]
    recent = t >= t[-1] - RATE_SPAN_S
    out = np.empty(N_FEATURES, dtype=np.float64)
    out[0] = load[-1]
    out[1] = latency[-1]
    out[2] = rows[-1, ERROR]
    out[3] = _slope(t[recent], load[recent])
    out[4] = _slope(t[recent], latency[recent])
    out[5] = _slope(t, load)
    out[6] = load.mean()
    out[7] = latency.mean()
    out[8] = latency.max()
    out[9] = latency.std()
    out[10] = _slope(load, latency)
    return out
