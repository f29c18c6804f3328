"""The original prototype's way, rebuilt as its description goes (its code
is not in this repository): on every decision, cut each candidate's window
out of a pandas DataFrame of telemetry, compute the features with pandas,
and run scikit-learn's predict on them. The same features and the same
forest as ACE, so only the way differs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.perf.fixtures import Forest, backend_name
from bench.perf.sizes import Sizes
from bench.perf.timing import TIMES, Row, mean_s, us
from services.common import synthetic
from services.common.features import FEATURE_NAMES, RATE_SPAN_S
from services.trainer import train

WINDOW_S = 300.0


def telemetry(backends: int, seconds: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = backends * seconds
    return pd.DataFrame(
        {
            "backend_id": [backend_name(i % backends) for i in range(n)],
            "observed_at": synthetic.EPOCH + np.arange(n) // backends,
            "load": rng.uniform(20, 80, n),
            "latency_ms": rng.uniform(80, 400, n),
            "error_rate": rng.uniform(0, 0.01, n),
        }
    )


def _slope(x: pd.Series, y: pd.Series) -> float:
    var = x.var()
    return 0.0 if not var > 0 else float(x.cov(y) / var)


def features_of(window: pd.DataFrame) -> list[float]:
    last = window.iloc[-1]
    recent = window[window.observed_at >= last.observed_at - RATE_SPAN_S]
    return [
        last.load,
        last.latency_ms,
        last.error_rate,
        _slope(recent.observed_at, recent.load),
        _slope(recent.observed_at, recent.latency_ms),
        _slope(window.observed_at, window.load),
        window.load.mean(),
        window.latency_ms.mean(),
        window.latency_ms.max(),
        window.latency_ms.std(ddof=0),
        _slope(window.load, window.latency_ms),
    ]


def decide(frame: pd.DataFrame, candidates: list[str], forest: Forest) -> str:
    now = frame.observed_at.max()
    rows = []
    for backend_id in candidates:
        window = frame[(frame.backend_id == backend_id) & (frame.observed_at > now - WINDOW_S)]
        rows.append(features_of(window.sort_values("observed_at")))
    X = pd.DataFrame(rows, columns=list(FEATURE_NAMES)).to_numpy(dtype=np.float64)
    predicted = train.predict(forest.fitted, X)
    return candidates[int(np.argmin(predicted))]


def run(sizes: Sizes, forest: Forest, decide_p50_s: float) -> list[Row]:
    candidates = [backend_name(i) for i in range(sizes.candidates)]
    frame = telemetry(sizes.candidates * 2, 300)
    decide(frame, candidates, forest)
    per_decision = mean_s(lambda: decide(frame, candidates, forest), sizes.prototype_decisions)
    return [
        Row(
            f"the prototype's way: per-decision pandas window and scikit-learn predict ({sizes.candidates} candidates)",
            f"{us(per_decision)} a decision",
            f"ACE `Decide` p50 {us(decide_p50_s)}",
            f"ACE {per_decision / decide_p50_s:,.0f} {TIMES} faster",
            f"ACE ≥ 10 {TIMES} faster",
            per_decision >= 10 * decide_p50_s,
        )
    ]
