"""Recorded telemetry streamed through the router's own breakers, one
configuration at a time, and scored with the columns of bench.fleet.score.

A source is a history as arrays (a point per backend per interval) with the
spans where something was injected. Three kinds feed it: bench.fleet's
generator, the trainer's synthetic generator (for the transfer in the other
direction), and Nezha's recorded pods (bench.foresight.realtel's loader and
scaling).

A configuration is a name and a factory of routers: given the number of
backends, a bench.foresight.routers.AceRouter, which feeds the router's
RoutingTable (policy.observe, Breaker, Settings) exactly as the sync loop
would. The reactive breaker is the same router with no model; another
policy (a trust gate, say) is one more Config whose factory builds it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.fleet import generator, score
from bench.foresight import model, realtel
from bench.foresight.routers import AceRouter, Model
from bench.foresight.sim import Telemetry
from services.common import synthetic
from services.common.telemetry import Point
from services.predictor.model import LoadedModel
from services.predictor.scoring import Forecast, Limits, Scorer
from services.predictor.trust import UNSCORED, TrustSettings, TrustVerdict, assess
from services.router.policy import Settings
from services.router.table import Update
from services.trainer.train import TrainedModel

Floats = npt.NDArray[np.float64]

THRESHOLD_MS = Settings().threshold_ms
HORIZON_S = Settings().horizon_s


@dataclass(frozen=True)
class Source:
    name: str
    interval_s: float
    times: Floats  # unix seconds, one per point
    load: Floats  # (points, backends)
    latency_ms: Floats
    error_rate: Floats
    events: tuple[tuple[tuple[float, float], ...], ...]  # per backend: injected (start, end), unix seconds

    @property
    def backends(self) -> int:
        return int(self.load.shape[1])

    def window(self, start: float, end: float) -> Source:
        """The points with start <= time < end, and the events that touch them."""
        keep = (self.times >= start) & (self.times < end)
        return Source(
            self.name,
            self.interval_s,
            self.times[keep],
            self.load[keep],
            self.latency_ms[keep],
            self.error_rate[keep],
            tuple(tuple((a, b) for a, b in own if b >= start and a < end) for own in self.events),
        )

    def points(self) -> list[Point]:
        """The history as the feature store would have recorded it."""
        return [
            Point(
                f"{self.name}-{b}",
                float(t),
                float(self.load[i, b]),
                float(self.latency_ms[i, b]),
                float(self.error_rate[i, b]),
            )
            for b in range(self.backends)
            for i, t in enumerate(self.times.tolist())
        ]


def from_fleet(f: generator.FleetTelemetry, name: str) -> Source:
    events: list[list[tuple[float, float]]] = [[] for _ in f.replicas]
    for ev in f.events:
        events[ev.backend].append((f.start + ev.start_s, f.start + ev.end_s))
    return Source(name, f.interval_s, f.times, f.load, f.latency_ms, f.error_rate, tuple(map(tuple, events)))


def from_synthetic(h: synthetic.History, name: str, interval_s: float) -> Source:
    ids = [b.backend_id for b in h.backends]
    times = np.asarray(sorted({p.observed_at for p in h.points}))
    row = {t: i for i, t in enumerate(times.tolist())}
    arrays = np.zeros((3, len(times), len(ids)))
    for p in h.points:
        i, b = row[p.observed_at], ids.index(p.backend_id)
        arrays[:, i, b] = (p.load, p.latency_ms, p.error_rate)
    events = tuple(
        tuple((synthetic.EPOCH + s.start_s, synthetic.EPOCH + s.end_s) for s in h.spikes.get(backend_id, ()))
        for backend_id in ids
    )
    return Source(name, interval_s, times, arrays[0], arrays[1], arrays[2], events)


def from_nezha(day: realtel.Day, scale: realtel.Scale, name: str) -> Source:
    load, latency = scale.apply(day)
    events = tuple(tuple((f.at, f.at + realtel.FAULT_SPAN_S) for f in day.faults if f.pod == pod) for pod in day.pods)
    return Source(name, realtel.STEP_S, day.minutes, load, latency, np.zeros_like(load), events)


def train(sources: Sequence[Source]) -> TrainedModel:
    """The trainer's own pipeline (dataset.build, train.train) on these
    histories, as Trainer.Train would run it on the feature store's."""
    points = [p for s in sources for p in s.points()]
    points.sort(key=lambda p: (p.observed_at, p.backend_id))
    return model.fit(points, HORIZON_S, THRESHOLD_MS).trained


def makeup_model() -> TrainedModel:
    """What `make up` trains when the predictor has no model: tools.up asks
    Trainer.Train for SyntheticSource(seed=1) at its defaults."""
    return model.fit(synthetic.random_history(1).points, HORIZON_S, THRESHOLD_MS).trained


RouterFactory = Callable[[int], AceRouter]


@dataclass(frozen=True)
class Config:
    name: str
    make: RouterFactory


def reactive(settings: Settings | None = None) -> Config:
    return Config(
        "reactive breaker on observed latency", lambda n: AceRouter("reactive", n, settings or Settings(), None)
    )


def forecast(name: str, loaded: Model, settings: Settings | None = None) -> Config:
    return Config(name, lambda n: AceRouter(name, n, settings or Settings(), loaded))


# How often the gate judges, in event time: the predictor's loop judges on
# every evaluation tick (10 s of wall clock, about as much event time live).
JUDGE_EVERY_S = 60.0


class GatedRouter(AceRouter):
    """ACE as it runs with the predictor's trust gate: every forecast is
    scored against the telemetry that followed (services.predictor.scoring,
    the predictor's own Scorer and window), with calibrate the forecasts are
    scaled to the cut-off fitted on those labels as the predictor's loop
    fits it (services.predictor.calibration), the gate's rule
    (services.predictor.trust.judge) decides on the scaled forecasts whether
    the model is proven, and the router's breakers run on the forecast only
    while it is; until then on observed latency, the forecast in shadow."""

    VERSION = "model"

    def __init__(
        self, name: str, n: int, settings: Settings, loaded: LoadedModel, trust: TrustSettings, calibrate: bool = False
    ) -> None:
        super().__init__(name, n, settings, loaded)
        self.scorer = Scorer(Limits(), threshold_ms=settings.threshold_ms)
        # With calibrate, forecasts are scaled by threshold / the cut-off
        # fitted on the labels so far (services.predictor.calibration).
        self.calibrate = calibrate
        self.scale = 1.0
        self.trust_settings = trust
        self.verdict: TrustVerdict = UNSCORED
        self.judged_at = -math.inf
        # Event time at which the model was first proven; None: never.
        self.proven_at: float | None = None

    def updates(self, telemetry: Telemetry) -> list[Update]:
        out = super().updates(telemetry)
        at = out[0].as_of
        # The truth is each point's latency, as the predictor's truth feed reads it.
        self.scorer.observe([(u.backend_id, u.as_of, float(telemetry.latency_ms[b])) for b, u in enumerate(out)])
        self.scorer.add_forecasts(
            Forecast(self.VERSION, u.backend_id, u.as_of, HORIZON_S, u.predicted_ms)
            for u in out
            if u.predicted_ms is not None
        )
        if at - self.judged_at >= JUDGE_EVERY_S:
            self.judged_at = at
            self.verdict, self.scale = assess(
                self.scorer.labels(self.VERSION),
                self.settings.threshold_ms,
                self.verdict,
                self.scale,
                self.trust_settings,
                self.calibrate,
            )
            if self.verdict.proven and self.proven_at is None:
                self.proven_at = at
        proven, k = self.verdict.proven, self.scale
        return [
            dataclasses.replace(u, proven=proven, predicted_ms=None if u.predicted_ms is None else u.predicted_ms * k)
            for u in out
        ]


def gated(
    name: str,
    loaded: LoadedModel,
    settings: Settings | None = None,
    trust: TrustSettings | None = None,
    calibrate: bool = True,
) -> Config:
    return Config(
        name, lambda n: GatedRouter(name, n, settings or Settings(), loaded, trust or TrustSettings(), calibrate)
    )


def run(config: Config, source: Source) -> score.Columns:
    router = config.make(source.backends)
    transitions = realtel.stream(router, source.times, source.load, source.latency_ms, source.error_rate)
    return score.score(
        transitions,
        source.times,
        source.latency_ms,
        source.events,
        threshold_ms=THRESHOLD_MS,
        horizon_s=HORIZON_S,
        interval_s=source.interval_s,
    )


def table(configs: Sequence[Config], sources: Sequence[Source]) -> dict[str, score.Columns]:
    """Each configuration's columns, summed over the sources."""
    out: dict[str, score.Columns] = {}
    for config in configs:
        total = score.Columns()
        for source in sources:
            total.add(run(config, source))
        out[config.name] = total
    return out
