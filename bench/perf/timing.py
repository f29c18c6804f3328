"""Small statistics and the table row every benchmark returns. Figures are
quoted as ratios to a baseline taken in the same run, because absolute
numbers drift on a shared machine while ratios mostly do not."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# The multiplication sign (U+00D7) of the table, spelled out: ruff would take the
# literal character for a mistyped x.
TIMES = "\u00d7"


def pct(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of the samples; NaN when there are none
    (a NaN compares false, so a target judged on it is missed)."""
    if not len(samples):
        return float("nan")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def per_call_s(fn: Callable[[], object], calls: int) -> list[float]:
    """The duration of each of `calls` sequential calls, in seconds."""
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def mean_s(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds a call over `calls` back-to-back calls (for calls too
    short to time one by one)."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def us(seconds: float) -> str:
    value = seconds * 1e6
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    if value >= 100:
        return f"{value:,.0f} µs"
    return f"{value:,.1f} µs"


def rate(per_s: float, unit: str = "/s") -> str:
    return f"{per_s:,.0f}{unit}"


@dataclass(frozen=True)
class Row:
    """One line of the table. `met` is None for a figure without a target."""

    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "—"}[self.met]
