"""Seeded synthetic telemetry: backends that behave like queues. Latency rises
slowly with utilisation and steeply near capacity; past capacity a backlog
builds and keeps latency high until it drains. Load spikes ramp up over
minutes, which is what gives a forecaster something to see coming. Quality
scores fall as latency rises and are reported hours after the fact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.common.telemetry import Point

# Event time of the first point of every generated history: fixed so that
# runs repeat to the byte.
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TIMEOUT_MS = 5_000.0
# The shape of a backend's base load, outside spikes: a two-hour cycle and a
# slow AR(1) drift, both as fractions of capacity. simulate() and
# utilisation() share them, so the benchmark's request-level traffic has the
# same shape as the telemetry the trainer learns from.
DIURNAL_AMPLITUDE = 0.08
DIURNAL_PERIOD_S = 7200.0
WOBBLE_DECAY = 0.97
WOBBLE_SD = 0.01


@dataclass(frozen=True)
class Backend:
    backend_id: str
    capacity_rps: float
    base_latency_ms: float  # latency at zero load
    base_utilisation: float  # mean load as a fraction of capacity, outside spikes


@dataclass(frozen=True)
class Spike:
    start_s: float  # seconds after the history starts
    ramp_up_s: float
    hold_s: float
    ramp_down_s: float
    peak_utilisation: float  # load at the top of the spike / capacity

    def extra(self, t: float, base: float) -> float:
        """Utilisation the spike adds at time t over the base utilisation."""
        lift = max(self.peak_utilisation - base, 0.0)
        rel = t - self.start_s
        if rel < 0:
            return 0.0
        if rel < self.ramp_up_s:
            return lift * rel / self.ramp_up_s
        rel -= self.ramp_up_s
        if rel < self.hold_s:
            return lift
        rel -= self.hold_s
        if rel < self.ramp_down_s:
            return lift * (1 - rel / self.ramp_down_s)
        return 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.ramp_up_s + self.hold_s + self.ramp_down_s


class QualityLabel(NamedTuple):
    backend_id: str
    observed_at: float  # event time of the interval the score is about
    quality: float  # 0 (useless answers) to 1 (perfect)
    reported_at: float  # event time at which the score arrived


@dataclass(frozen=True)
class History:
    points: list[Point]  # sorted by observed_at, then backend_id
    quality: list[QualityLabel]  # sorted by reported_at
    backends: list[Backend]
    spikes: dict[str, list[Spike]]


def simulate(
    backends: list[Backend],
    spikes: dict[str, list[Spike]],
    *,
    duration_s: float,
    interval_s: float,
    seed: int,
) -> History:
    """Runs each backend's queue over the given spikes."""
    rng = np.random.default_rng(seed)
    steps = int(duration_s // interval_s)
    points: list[Point] = []
    quality: list[QualityLabel] = []
    for backend in backends:
        backlog = 0.0  # requests waiting beyond what the server absorbs
        wobble = 0.0  # slow AR(1) drift of the base load
        phase = rng.uniform(0, 2 * math.pi)
        for step in range(1, steps + 1):
            t = step * interval_s
            wobble = WOBBLE_DECAY * wobble + rng.normal(0, WOBBLE_SD)
            diurnal = DIURNAL_AMPLITUDE * math.sin(2 * math.pi * t / DIURNAL_PERIOD_S + phase)
            util = backend.base_utilisation + diurnal + wobble
            util += sum(s.extra(t, backend.base_utilisation) for s in spikes.get(backend.backend_id, ()))
            load = max(util, 0.0) * backend.capacity_rps * rng.lognormal(0, 0.03)
            rho = load / backend.capacity_rps
            # Requests that would wait past the timeout are dropped, so the
            # backlog never holds more than the timeout's worth of work.
            backlog = min(
                max(backlog + (load - backend.capacity_rps) * interval_s, 0.0),
                backend.capacity_rps * TIMEOUT_MS / 1000.0,
            )
            queueing = backend.base_latency_ms / (1.0 - min(rho, 0.97))
            waiting = 1000.0 * backlog / backend.capacity_rps
            latency = min((queueing + waiting) * rng.lognormal(0, 0.05), TIMEOUT_MS)
            error_rate = min(
                0.002 * rng.lognormal(0, 0.3) + 0.5 * max(rho - 0.95, 0.0) + 0.3 * (latency >= TIMEOUT_MS), 1.0
            )
            observed_at = EPOCH + t
            points.append(Point(backend.backend_id, observed_at, load, latency, error_rate))
            score = float(np.clip(1.0 - latency / 2000.0 - error_rate + rng.normal(0, 0.03), 0.0, 1.0))
            delay = rng.uniform(3600.0, 3 * 3600.0)
            quality.append(QualityLabel(backend.backend_id, observed_at, score, observed_at + delay))
    points.sort(key=lambda p: (p.observed_at, p.backend_id))
    quality.sort(key=lambda q: q.reported_at)
    return History(points, quality, backends, spikes)


def utilisation(
    base_utilisation: float, spikes: list[Spike], *, duration_s: float, interval_s: float, seed: int
) -> npt.NDArray[np.float64]:
    """Offered load as a fraction of capacity at the end of each interval:
    the base load with the same cycle and drift simulate() gives a backend,
    plus the spikes. For request-level traffic (the foresight benchmark
    draws Poisson arrivals at this rate)."""
    rng = np.random.default_rng(seed)
    steps = int(duration_s // interval_s)
    t = np.arange(1, steps + 1) * interval_s
    noise = rng.normal(0, WOBBLE_SD, steps)
    wobble = np.empty(steps)
    level = 0.0
    for i in range(steps):
        level = WOBBLE_DECAY * level + noise[i]
        wobble[i] = level
    phase = rng.uniform(0, 2 * math.pi)
    util = base_utilisation + DIURNAL_AMPLITUDE * np.sin(2 * math.pi * t / DIURNAL_PERIOD_S + phase) + wobble
    for spike in spikes:
        util += [spike.extra(float(x), base_utilisation) for x in t]
    return np.asarray(np.maximum(util, 0.0), dtype=np.float64)


@dataclass(frozen=True)
class FleetShape:
    """The ranges random_history draws a fleet from: uniform (low, high)
    pairs, and exponential means for the time to a backend's first spike
    and between its spikes. The defaults are the fleet the trainer's
    synthetic source makes."""

    capacity_rps: tuple[float, float] = (40.0, 200.0)
    base_latency_ms: tuple[float, float] = (50.0, 90.0)
    base_utilisation: tuple[float, float] = (0.3, 0.55)
    first_spike_mean_s: float = 1200.0
    ramp_up_s: tuple[float, float] = (120.0, 480.0)
    hold_s: tuple[float, float] = (60.0, 300.0)
    ramp_down_s: tuple[float, float] = (120.0, 420.0)
    peak_utilisation: tuple[float, float] = (0.7, 1.2)
    spike_gap_mean_s: float = 3600.0


def random_history(
    seed: int,
    n_backends: int = 6,
    duration_s: float = 6 * 3600.0,
    interval_s: float = 10.0,
    shape: FleetShape = FleetShape(),
) -> History:
    """A fleet with varied capacities and random spikes, by default about
    one an hour per backend; some peak below capacity (ramps that do not
    breach), which keeps a forecaster honest about false alarms."""
    rng = np.random.default_rng(seed)
    backends = [
        Backend(
            backend_id=f"backend-{i:02d}",
            capacity_rps=float(rng.uniform(*shape.capacity_rps)),
            base_latency_ms=float(rng.uniform(*shape.base_latency_ms)),
            base_utilisation=float(rng.uniform(*shape.base_utilisation)),
        )
        for i in range(n_backends)
    ]
    spikes: dict[str, list[Spike]] = {}
    for backend in backends:
        t = float(rng.exponential(shape.first_spike_mean_s))
        own: list[Spike] = []
        while t < duration_s:
            spike = Spike(
                start_s=t,
                ramp_up_s=float(rng.uniform(*shape.ramp_up_s)),
                hold_s=float(rng.uniform(*shape.hold_s)),
                ramp_down_s=float(rng.uniform(*shape.ramp_down_s)),
                peak_utilisation=float(rng.uniform(*shape.peak_utilisation)),
            )
            own.append(spike)
            t = spike.end_s + float(rng.exponential(shape.spike_gap_mean_s))
        spikes[backend.backend_id] = own
    return simulate(backends, spikes, duration_s=duration_s, interval_s=interval_s, seed=seed + 1)


def demo_scenario(seed: int = 11) -> History:
    """The `make run` story: three backends for 45 minutes of event time;
    backend-c climbs into a load spike after 10 minutes and backend-a after
    28; backend-b stays calm throughout."""
    backends = [
        Backend("backend-a", capacity_rps=120.0, base_latency_ms=70.0, base_utilisation=0.4),
        Backend("backend-b", capacity_rps=100.0, base_latency_ms=65.0, base_utilisation=0.35),
        Backend("backend-c", capacity_rps=80.0, base_latency_ms=75.0, base_utilisation=0.4),
    ]
    spikes = {
        "backend-c": [Spike(start_s=600, ramp_up_s=420, hold_s=180, ramp_down_s=300, peak_utilisation=1.15)],
        "backend-a": [Spike(start_s=1680, ramp_up_s=360, hold_s=120, ramp_down_s=300, peak_utilisation=1.1)],
    }
    return simulate(backends, spikes, duration_s=2700.0, interval_s=10.0, seed=seed)
