"""The closed-loop simulation: a pool of backends, each a first-come,
first-served queue with a few service slots, driven one request at a time.

- A request's latency is its wait for a slot plus its service time (its size
  times the mean service time, divided by the backend's speed at the time it
  starts). Latency therefore rises slowly with utilisation and steeply near
  capacity.
- A request that would wait past the timeout gives up without being served;
  one that is served but finishes past the timeout is a failure too (the
  client saw the timeout), and its slot was still busy. A backend at speed
  0 answers nothing: its requests time out.
- Every interval of event time, each backend emits the telemetry ACE ingests:
  load (requests routed to it per second), latency (the p95 of the requests
  that finished in the interval; with none, what a probe would see: the
  current wait plus one mean-size service) and error rate.
- The router sees the same things a real one would: its own decisions,
  completions as they happen, and the telemetry at each interval. Its
  choices change the queues, which change latency: the loop is closed.

Latency here is modelled, not measured."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bench.foresight.faults import Scenario
from bench.foresight.traffic import Arrivals

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Pool:
    backends: int = 4
    slots: int = 2  # requests a backend serves at once
    mean_service_ms: float = 60.0  # at full speed, for a request of size 1
    timeout_ms: float = 5_000.0
    interval_s: float = 10.0  # telemetry
    slo_ms: float = 300.0

    @property
    def capacity_rps(self) -> float:
        """Requests/s one backend at full speed serves at most."""
        return self.slots * 1000.0 / self.mean_service_ms


@dataclass(frozen=True)
class Telemetry:
    """One interval's telemetry of every backend, as arrays of len(backends)."""

    at_s: float  # end of the interval, seconds from the start of the run
    load: Floats
    latency_ms: Floats
    error_rate: Floats


class Router(Protocol):
    name: str
    # Whether the simulation must call done() for every completion.
    wants_done: bool

    def pick(self, t: float) -> int: ...

    def done(self, backend: int, t: float, latency_ms: float, failed: bool) -> None: ...

    def tick(self, telemetry: Telemetry) -> None: ...


@dataclass(frozen=True)
class Run:
    latency_ms: npt.NDArray[np.float32]  # per request, the timeout for failures
    backend: npt.NDArray[np.int8]
    failed: npt.NDArray[np.bool_]
    arrival_s: Floats
    tick_s: Floats  # (ticks,)
    load: Floats  # (ticks, backends)
    latency_tel_ms: Floats
    error_rate: Floats

    @property
    def offered(self) -> int:
        return len(self.latency_ms)


def _p95(values: list[float]) -> float:
    values.sort()
    return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


def run(router: Router, arrivals: Arrivals, scenario: Scenario, pool: Pool) -> Run:
    n_b = pool.backends
    timeout_s = pool.timeout_ms / 1000.0
    mean_s = pool.mean_service_ms / 1000.0
    interval = pool.interval_s
    speed = scenario.speed.tolist()  # lists index faster than arrays in the loop
    last_second = len(speed[0]) - 1
    free: list[list[float]] = [[0.0] * pool.slots for _ in range(n_b)]
    completions: list[tuple[float, int, float, bool]] = []
    wants_done = router.wants_done

    n = len(arrivals)
    latency = [0.0] * n
    chosen = [0] * n
    failed = [False] * n
    # This interval's accumulators.
    routed = [0] * n_b
    finished: list[list[float]] = [[] for _ in range(n_b)]
    errors = [0] * n_b
    ticks: list[Telemetry] = []
    next_tick = interval
    end = scenario.duration_s

    def drain(until: float) -> None:
        while completions and completions[0][0] <= until:
            t_done, b, lat, fail = heapq.heappop(completions)
            finished[b].append(lat)
            if fail:
                errors[b] += 1
            if wants_done:
                router.done(b, t_done, lat, fail)

    def emit(at: float) -> None:
        load = np.empty(n_b)
        lat = np.empty(n_b)
        err = np.empty(n_b)
        second = min(int(at), last_second)
        for b in range(n_b):
            load[b] = routed[b] / interval
            if finished[b]:
                lat[b] = _p95(finished[b])
                err[b] = errors[b] / len(finished[b])
            else:
                s = speed[b][second]
                wait = max(0.0, min(free[b]) - at)
                probe = wait + mean_s / s if s > 0 else timeout_s
                lat[b] = min(probe, timeout_s) * 1000.0
                err[b] = 0.0
            routed[b] = 0
            finished[b] = []
            errors[b] = 0
        telemetry = Telemetry(at, load, lat, err)
        ticks.append(telemetry)
        router.tick(telemetry)

    times = arrivals.times.tolist()
    sizes = arrivals.sizes.tolist()
    for i in range(n):
        t = times[i]
        while t >= next_tick:
            drain(next_tick)
            emit(next_tick)
            next_tick += interval
        drain(t)
        b = router.pick(t)
        routed[b] += 1
        slots = free[b]
        start = slots[0] if slots[0] > t else t
        wait = start - t
        s = speed[b][min(int(start), last_second)]
        if wait >= timeout_s or s <= 0.0:
            lat_s, fail = timeout_s, True
        else:
            service = sizes[i] * mean_s / s
            heapq.heapreplace(slots, start + service)
            lat_s = wait + service
            fail = lat_s > timeout_s
            if fail:
                lat_s = timeout_s
        heapq.heappush(completions, (t + lat_s, b, lat_s * 1000.0, fail))
        latency[i] = lat_s * 1000.0
        chosen[i] = b
        failed[i] = fail
    while next_tick <= end:
        drain(next_tick)
        emit(next_tick)
        next_tick += interval
    return Run(
        latency_ms=np.asarray(latency, dtype=np.float32),
        backend=np.asarray(chosen, dtype=np.int8),
        failed=np.asarray(failed, dtype=np.bool_),
        arrival_s=arrivals.times,
        tick_s=np.asarray([x.at_s for x in ticks]),
        load=np.asarray([x.load for x in ticks]).reshape(len(ticks), n_b),
        latency_tel_ms=np.asarray([x.latency_ms for x in ticks]).reshape(len(ticks), n_b),
        error_rate=np.asarray([x.error_rate for x in ticks]).reshape(len(ticks), n_b),
    )
