"""An ablation of issue 14's "features that transfer", inside the bench only:
the services' feature schema is untouched.

Each backend's load and latency are divided by its own baseline (the median
of its last BASELINE_S of points, its own point included, so it is causal)
and multiplied by a fixed reference, before they reach the Window, the
features and the model, in training and in serving alike. The model then
learns "latency N times this backend's usual" and forecasts in those units;
RelativeRouter multiplies the forecast back by the backend's baseline, so
the breaker still compares milliseconds with the threshold.

With pool=True the baseline is the pool instead: at each step every
backend's load and latency are divided by the median of all backends' at
that step, so the model learns "N times the pool's median now", and a
surge that lifts the whole pool looks like nothing on any one backend."""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from bench.fleet.evaluate import Config, Floats, Source
from bench.foresight.routers import AceRouter
from bench.foresight.sim import Telemetry
from services.predictor.model import LoadedModel
from services.router.policy import Settings
from services.router.table import Update

# An hour: long enough that the median is the backend's usual state through
# the longest event the generators make (a 45-minute leak stays under half),
# short enough to follow the daily cycle.
BASELINE_S = 3600.0
# What a backend's baseline becomes: the trainer's synthetic fleet idles
# near 100 ms and 100 requests/s, so its models see familiar magnitudes.
REF_MS = 100.0
REF_LOAD = 100.0
# A floor under the load baseline: an idle backend does not divide by zero.
MIN_LOAD = 1e-3


class Baseline:
    """The running medians of one backend's load and latency."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, float, float]] = deque()

    def add(self, at: float, load: float, latency_ms: float) -> tuple[float, float]:
        self.points.append((at, load, latency_ms))
        while self.points[0][0] < at - BASELINE_S:
            self.points.popleft()
        held = np.asarray(self.points)
        return max(float(np.median(held[:, 1])), MIN_LOAD), max(float(np.median(held[:, 2])), 1.0)


def pool_bases(load: Floats, latency_ms: Floats) -> tuple[Floats, Floats]:
    """The pool's median load and latency, per step (the last axis)."""
    return (
        np.maximum(np.median(load, axis=-1, keepdims=True), MIN_LOAD),
        np.maximum(np.median(latency_ms, axis=-1, keepdims=True), 1.0),
    )


def relative(source: Source, pool: bool = False) -> Source:
    """The source in baseline units, point by point as a router would see it."""
    if pool:
        pool_load, pool_latency = pool_bases(source.load, source.latency_ms)
        return dataclasses.replace(
            source,
            load=source.load * REF_LOAD / pool_load,
            latency_ms=source.latency_ms * REF_MS / pool_latency,
        )
    load, latency = np.empty_like(source.load), np.empty_like(source.latency_ms)
    for b in range(source.backends):
        baseline = Baseline()
        for i, t in enumerate(source.times.tolist()):
            load_base, latency_base = baseline.add(t, float(source.load[i, b]), float(source.latency_ms[i, b]))
            load[i, b] = source.load[i, b] * REF_LOAD / load_base
            latency[i, b] = source.latency_ms[i, b] * REF_MS / latency_base
    return dataclasses.replace(source, load=load, latency_ms=latency)


class RelativeRouter(AceRouter):
    """AceRouter whose windows and model see baseline units; its breakers
    see milliseconds: the forecast times the baseline, the observed latency
    as reported."""

    def __init__(self, name: str, n: int, settings: Settings, model: LoadedModel, pool: bool = False) -> None:
        super().__init__(name, n, settings, model)
        self.baselines = [Baseline() for _ in range(n)]
        self.pool = pool

    def updates(self, telemetry: Telemetry) -> list[Update]:
        if self.pool:
            pool_load, pool_latency = pool_bases(telemetry.load, telemetry.latency_ms)
            load_base: Floats = np.broadcast_to(pool_load, telemetry.load.shape)
            latency_base: Floats = np.broadcast_to(pool_latency, telemetry.latency_ms.shape)
        else:
            scales = [
                bl.add(telemetry.at_s, float(telemetry.load[b]), float(telemetry.latency_ms[b]))
                for b, bl in enumerate(self.baselines)
            ]
            load_base = np.asarray([s[0] for s in scales])
            latency_base = np.asarray([s[1] for s in scales])
        scaled = dataclasses.replace(
            telemetry,
            load=telemetry.load * REF_LOAD / load_base,
            latency_ms=telemetry.latency_ms * REF_MS / latency_base,
        )
        return [
            dataclasses.replace(
                u,
                observed_ms=float(telemetry.latency_ms[b]),
                predicted_ms=None if u.predicted_ms is None else u.predicted_ms * float(latency_base[b]) / REF_MS,
            )
            for b, u in enumerate(super().updates(scaled))
        ]


def forecast(name: str, loaded: LoadedModel, settings: Settings | None = None, pool: bool = False) -> Config:
    return Config(name, lambda n: RelativeRouter(name, n, settings or Settings(), loaded, pool))
