"""A second telemetry generator: a fleet of a kind the trainer's synthetic
generator (services/common/synthetic.py) does not make. Where that one has
M/M/1-like queues of 40-200 requests/s with 50-90 ms base latency, a two-hour
cycle, gentle lognormal noise and one kind of event (load spikes ramping
over 2-8 minutes), this one differs in every respect the brief names:

- base latencies: two kinds of replica, fast (15-40 ms) and slow
  (80-150 ms, a large model), so the same absolute latency means "idle" on
  one and "near the threshold" on the other;
- capacities: 3-25 requests/s (GPU replicas), so absolute load is far below
  anything the synthetic fleet shows;
- latency curve: flat with load (a batching server) until capacity, then a
  backlog that grows and drains at the rate the server is over or under it,
  instead of a 1/(1 - utilisation) knee that warns early;
- load shapes: a 24-hour cycle, step changes (a deploy or a rebalancing moves
  traffic for good) and Poisson counting noise, which is large at these rates;
- fault shapes (faults.py of the foresight benchmark has others again):
  surge (load ramps over 30-120 s, not minutes), leak (capacity decays over
  15-45 minutes until a restart restores it), throttle (capacity halves at
  once: a noisy neighbour or thermal throttling), dependency (latency steps up
  with load unchanged: a slow downstream call) and near miss (a surge that
  peaks at 55-70% of capacity, where a breaker should stay closed; on the
  smallest replicas a burst of arrivals may still put a point or two over
  the threshold, as it would in a real queue);
- noise: pauses (a garbage collection or a preemption multiplies one step's
  latency by 1.2-1.6) on top of multiplicative noise;
- reporting interval: any multiple of the 5 s simulation step; each point
  carries the mean load, the p95 of the step latencies and the mean error
  rate of its interval, as a scraper computing rates over its interval would.

Seeded: the same (seed, interval) gives the same telemetry to the byte."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common import synthetic

Floats = npt.NDArray[np.float64]

STEP_S = 5.0  # simulation step; reporting intervals are multiples of it
TIMEOUT_MS = 10_000.0  # backlog beyond this much waiting is dropped as errors
DAY_S = 86_400.0
# Events per backend-hour: about one every 80 minutes, so a 6-hour history of
# 8 backends has some thirty, and fault-free hours remain between them.
EVENT_RATE_PER_H = 0.75
KINDS = ("surge", "leak", "throttle", "dependency", "near_miss")


@dataclass(frozen=True)
class Replica:
    backend_id: str
    capacity_rps: float
    base_ms: float  # latency at zero load
    utilisation: float  # mean offered load / capacity outside events


@dataclass(frozen=True)
class Event:
    """One injected episode on one backend, seconds from the history's start."""

    backend: int
    kind: str
    start_s: float
    end_s: float  # when its effect is gone (a leak: the restart)
    size: float  # surge: peak load / capacity; leak, throttle: capacity kept; dependency: added ms


@dataclass(frozen=True)
class FleetTelemetry:
    """A fleet's history as the breakers would receive it."""

    interval_s: float
    times: Floats  # event time of each point, unix seconds
    load: Floats  # (points, backends), requests/s
    latency_ms: Floats  # (points, backends), p95 over each interval
    error_rate: Floats  # (points, backends)
    replicas: tuple[Replica, ...]
    events: tuple[Event, ...]
    start: float  # unix seconds of time 0


def replicas(rng: np.random.Generator, n: int) -> tuple[Replica, ...]:
    out = []
    for i in range(n):
        slow = rng.random() < 0.5
        out.append(
            Replica(
                backend_id=f"node-{i:02d}",
                capacity_rps=float(rng.uniform(3.0, 8.0) if slow else rng.uniform(10.0, 25.0)),
                base_ms=float(rng.uniform(80.0, 150.0) if slow else rng.uniform(15.0, 40.0)),
                utilisation=float(rng.uniform(0.25, 0.5)),
            )
        )
    return tuple(out)


def events(rng: np.random.Generator, backend: int, duration_s: float) -> list[Event]:
    out: list[Event] = []
    t = float(rng.exponential(3600.0 / EVENT_RATE_PER_H))
    while t < duration_s:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        if kind == "surge":
            ev = Event(backend, kind, t, t + float(rng.uniform(300, 720)), float(rng.uniform(1.15, 1.6)))
        elif kind == "near_miss":
            ev = Event(backend, kind, t, t + float(rng.uniform(300, 720)), float(rng.uniform(0.55, 0.7)))
        elif kind == "leak":
            ev = Event(backend, kind, t, t + float(rng.uniform(900, 2700)), float(rng.uniform(0.25, 0.5)))
        elif kind == "throttle":
            ev = Event(backend, kind, t, t + float(rng.uniform(180, 600)), float(rng.uniform(0.3, 0.55)))
        else:
            ev = Event(backend, kind, t, t + float(rng.uniform(120, 480)), float(rng.uniform(200, 450)))
        out.append(ev)
        # Each event is over (and its backlog drained) before the next starts.
        t = ev.end_s + 600.0 + float(rng.exponential(3600.0 / EVENT_RATE_PER_H))
    return out


def _surge(ev: Event, t: float) -> float:
    """How far a surge or near miss has lifted the load towards its peak at
    time t, from 0 to 1: a fast ramp up (a third of a minute to two
    minutes), a hold, and a slower ramp down."""
    span = ev.end_s - ev.start_s
    rel = t - ev.start_s
    up, down = min(90.0, span / 4), span / 3
    if rel < 0 or rel >= span:
        return 0.0
    if rel < up:
        return rel / up
    if rel > span - down:
        return (span - rel) / down
    return 1.0


def _capacity_kept(ev: Event, t: float) -> float:
    rel = t - ev.start_s
    if rel < 0 or t >= ev.end_s:
        return 1.0
    if ev.kind == "leak":  # linear decay to `size`, then the restart restores it
        return 1.0 - (1.0 - ev.size) * rel / (ev.end_s - ev.start_s)
    return ev.size if ev.kind == "throttle" else 1.0


def generate(
    seed: int, *, backends: int = 8, duration_s: float = 6 * 3600.0, interval_s: float = 10.0
) -> FleetTelemetry:
    """A seeded history of `backends` replicas, reported every `interval_s`."""
    per = round(interval_s / STEP_S)
    if per < 1 or not math.isclose(per * STEP_S, interval_s):
        raise ValueError(f"interval_s must be a multiple of {STEP_S:g} s, got {interval_s}")
    rng = np.random.default_rng(seed)
    fleet = replicas(rng, backends)
    evs = [ev for b in range(backends) for ev in events(rng, b, duration_s)]
    steps = int(duration_s // interval_s) * per
    t = np.arange(1, steps + 1, dtype=np.float64) * STEP_S
    load = np.empty((steps, backends))
    latency = np.empty((steps, backends))
    errors = np.empty((steps, backends))
    for b, r in enumerate(fleet):
        own = [ev for ev in evs if ev.backend == b]
        phase = rng.uniform(0, 2 * math.pi)
        # Step changes of the offered load (a deploy or a rebalancing), held
        # within 20% of the mean so that overload comes from the events.
        level = np.ones_like(t)
        for at in rng.uniform(0, duration_s, rng.poisson(duration_s / 7200.0)):
            level = np.where(t >= at, np.clip(level * rng.uniform(0.9, 1.1), 0.8, 1.2), level)
        util = r.utilisation * level * (1 + 0.25 * np.sin(2 * math.pi * t / DAY_S + phase))
        for ev in own:
            if ev.kind in ("surge", "near_miss"):
                # Towards the peak from wherever the cycle has the load, so a
                # near miss stays below capacity at any time of day.
                lift = np.asarray([_surge(ev, float(x)) for x in t])
                util = util + lift * np.maximum(ev.size - util, 0.0)
        rate = np.maximum(util, 0.0) * r.capacity_rps
        load[:, b] = rng.poisson(rate * STEP_S) / STEP_S
        backlog = 0.0
        for k in range(steps):
            x = float(t[k])
            cap = r.capacity_rps * min((_capacity_kept(ev, x) for ev in own), default=1.0)
            extra = sum(ev.size for ev in own if ev.kind == "dependency" and ev.start_s <= x < ev.end_s)
            backlog = max(backlog + (load[k, b] - cap) * STEP_S, 0.0)
            dropped = max(backlog - cap * TIMEOUT_MS / 1000.0, 0.0)
            backlog -= dropped
            rho = min(load[k, b] / cap, 1.0)
            serve = r.base_ms * (1.0 + 0.4 * rho) + extra
            lat = (serve + 1000.0 * backlog / cap) * rng.lognormal(0, 0.08)
            if rng.random() < 0.003:
                lat *= rng.uniform(1.2, 1.6)
            latency[k, b] = min(lat, TIMEOUT_MS)
            served = max(load[k, b] * STEP_S, 1.0)
            errors[k, b] = min(0.001 * rng.lognormal(0, 0.5) + dropped / served, 1.0)
    shape = (steps // per, per, backends)
    return FleetTelemetry(
        interval_s=interval_s,
        times=synthetic.EPOCH + t[per - 1 :: per],
        load=load.reshape(shape).mean(axis=1),
        latency_ms=np.percentile(latency.reshape(shape), 95, axis=1),
        error_rate=errors.reshape(shape).mean(axis=1),
        replicas=fleet,
        events=tuple(sorted(evs, key=lambda ev: (ev.start_s, ev.backend))),
        start=synthetic.EPOCH,
    )
