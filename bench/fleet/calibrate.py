"""An ablation of issue 14's "precision where it matters", inside the bench
only: the predictor serves its forecasts unchanged.

A model's forecast is a point estimate of the horizon's worst latency, and
on a fleet it did not learn its scale is off: the make-up model forecasts
breaches three times as often as they come. Calibration here is the least
that could fix the scale: one cut-off per model and fleet. On the fleet's
own earlier history (never the reported part) the model's forecasts are
paired with their labels (the worst latency in the next horizon, as the
predictor's Scorer labels them), and the cut-off is
services.predictor.calibration's: the lowest forecast c at which the
forecasts at or over c were followed by a breach at least 80% of the time. ScaledRouter then multiplies every forecast
by threshold / c, so the router's breaker, unchanged, opens where the
forecast reaches c. With no such c (the model never reaches the target),
the cut-off is the one with the best precision. This fits once, on earlier
history; GatedRouter(calibrate=True) fits as the predictor does, online."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.fleet.evaluate import HORIZON_S, THRESHOLD_MS, Config, Floats, Source
from bench.foresight import realtel
from bench.foresight.routers import AceRouter
from bench.foresight.sim import Telemetry
from services.predictor.calibration import cutoff
from services.predictor.model import LoadedModel
from services.router.policy import Settings
from services.router.table import Update


class Recorder(AceRouter):
    """Streams like ACE and keeps every forecast it made, by point."""

    def __init__(self, n: int, loaded: LoadedModel) -> None:
        super().__init__("recorder", n, Settings(), loaded)
        self.rows: list[list[float]] = []

    def updates(self, telemetry: Telemetry) -> list[Update]:
        out = super().updates(telemetry)
        self.rows.append([np.nan if u.predicted_ms is None else u.predicted_ms for u in out])
        return out


def pairs(loaded: LoadedModel, source: Source) -> tuple[Floats, Floats]:
    """Each forecast and its label (worst latency over the next horizon),
    flattened; points without a forecast or a full horizon are left out."""
    recorder = Recorder(source.backends, loaded)
    realtel.stream(recorder, source.times, source.load, source.latency_ms, source.error_rate)
    forecasts = np.asarray(recorder.rows)
    steps = round(HORIZON_S / source.interval_s)
    t = len(source.times)
    labels = np.full_like(forecasts, np.nan)
    for i in range(t - steps):
        labels[i] = source.latency_ms[i + 1 : i + 1 + steps].max(axis=0)
    keep = ~np.isnan(forecasts) & ~np.isnan(labels)
    return forecasts[keep], labels[keep]


class ScaledRouter(AceRouter):
    def __init__(self, name: str, n: int, settings: Settings, loaded: LoadedModel, scale: float) -> None:
        super().__init__(name, n, settings, loaded)
        self.scale = scale

    def updates(self, telemetry: Telemetry) -> list[Update]:
        return [
            u if u.predicted_ms is None else dataclasses.replace(u, predicted_ms=u.predicted_ms * self.scale)
            for u in super().updates(telemetry)
        ]


def calibrated(name: str, loaded: LoadedModel, learnt: Source) -> tuple[Config, float]:
    """A configuration whose forecasts are scaled to the cut-off fitted on
    `learnt`; and the cut-off, in ms."""
    c = cutoff(*pairs(loaded, learnt), THRESHOLD_MS) or THRESHOLD_MS
    scale = THRESHOLD_MS / c
    return Config(name, lambda n: ScaledRouter(name, n, Settings(), loaded, scale)), c
