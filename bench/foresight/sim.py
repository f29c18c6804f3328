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
- Faults beyond speed (faults.py): a request may be answered with an error
  after its service (a drawn probability per backend and second); an outage
  answers every request with an error within FAIL_FAST_MS; a crash is an
  outage that also fails every request in service or queued on that backend
  at its start ("lost in flight"), and the backend comes back empty; a
  capacity cliff is a hidden resource that fills with the slots a backend
  keeps busy and, once full, multiplies its service time until it has
  drained.
- Every interval of event time, each backend emits the telemetry ACE ingests:
  load (requests routed to it per second), latency (the p95 of the requests
  that finished in the interval; with none, what a probe would see: the
  current wait plus one mean-size service) and error rate; and, outside ACE's
  contract, the share of its slots kept busy (what an ORCA load report
  carries).
- The router sees the same things a real one would: its own decisions,
  completions as they happen (with the service time and queue length a
  server reports beside its answer, as C3 assumes), and the telemetry at
  each interval. Its choices change the queues, which change latency: the
  loop is closed. The oracle routers alone are handed the pool itself
  (bind), to bound what any router could do.
- A router that hedges (the Hedging protocol; bench.foresight.hedging) has
  each request still unanswered after its delay sent again to another
  backend; the first success counts and nothing is cancelled.

Latency here is modelled, not measured."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bench.foresight.faults import Cliff, Scenario
from bench.foresight.traffic import Arrivals

Floats = npt.NDArray[np.float64]

# How soon a backend that refuses work (crashed, or failing fast) answers.
FAIL_FAST_MS = 1.0


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
    # Share of the backend's slot-time spent serving in the interval. Not in
    # ACE's contract: what an ORCA load report would carry, for gRPC WRR.
    utilisation: Floats
    # Answers per second in the interval (successes and errors).
    answers: Floats


class PoolView:
    """The pool as it is, for the oracles only: each backend's slots (when
    each frees, event time) and its true speed at every second."""

    def __init__(
        self, free: list[list[float]], speed: list[list[float]], slowdown: list[float], down_until: list[float]
    ) -> None:
        self.free = free
        self.speed = speed
        # Service-time multiplier of a capacity cliff, per backend, now.
        self.slowdown = slowdown
        # Until when each backend refuses work (an outage in force).
        self.down_until = down_until
        self.last_second = len(speed[0]) - 1

    def speed_at(self, backend: int, t: float) -> float:
        """Its true speed at event time t: 0 while it refuses work."""
        if t < self.down_until[backend]:
            return 0.0
        return self.speed[backend][min(int(t), self.last_second)] / self.slowdown[backend]


class Router(Protocol):
    name: str
    # Whether the simulation must call done() for every completion.
    wants_done: bool

    def pick(self, t: float) -> int: ...

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        """A completion: its latency as the caller saw it, whether it failed,
        and what the server reports beside it: the request's service time
        (0 when it was never served) and the requests then waiting for a
        slot there."""

    def tick(self, telemetry: Telemetry) -> None: ...


class Hedging(Protocol):
    """A router that hedges: a request still unanswered after
    hedge_after_ms is sent again, to pick_other's backend (None: not this
    time)."""

    hedge_after_ms: float

    def pick_other(self, t: float, exclude: int) -> int | None: ...


@dataclass(frozen=True)
class Run:
    latency_ms: npt.NDArray[np.float32]  # per request, as the caller saw it (failures included)
    backend: npt.NDArray[np.int8]
    failed: npt.NDArray[np.bool_]
    arrival_s: Floats
    tick_s: Floats  # (ticks,)
    load: Floats  # (ticks, backends)
    latency_tel_ms: Floats
    error_rate: Floats
    # Per request: in service or queued on a backend when it crashed.
    lost: npt.NDArray[np.bool_] | None = None
    # Copies sent by hedging.
    hedged: int = 0

    @property
    def offered(self) -> int:
        return len(self.latency_ms)


def _p95(values: list[float]) -> float:
    values.sort()
    return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


class _Cliff:
    """A hidden resource of one backend (a KV cache, a connection table).
    While its fault lasts, every request served there fills it by `gain`
    times its service time per slot (so it fills at `gain` x the share of
    slot-time in use); it always drains at `leak` per second. When it
    reaches 1, service time is multiplied by `factor` until it falls below
    `release`. With a precursor, service time grows with the fill before
    that: 1 + precursor x fill^2."""

    def __init__(self, spec: Cliff, slots: int) -> None:
        self.spec = spec
        self.slots = slots
        self.fill = 0.0
        self.full = False
        self.at = 0.0

    def advance(self, t: float) -> float:
        """Drains the resource up to time t; the service-time multiplier now."""
        c = self.spec
        self.fill = max(0.0, self.fill - (t - self.at) * c.leak)
        self.at = t
        if self.fill < c.release:
            self.full = False
        if self.full:
            return c.factor
        return 1.0 + c.precursor * self.fill * self.fill

    def hold(self, t: float, service_s: float) -> None:
        c = self.spec
        if c.start_s <= t < c.end_s:
            self.fill = min(1.0, self.fill + c.gain * service_s / self.slots)
            self.full = self.full or self.fill >= 1.0


def run(router: Router, arrivals: Arrivals, scenario: Scenario, pool: Pool) -> Run:
    n_b = pool.backends
    timeout_s = pool.timeout_ms / 1000.0
    fail_fast_s = FAIL_FAST_MS / 1000.0
    mean_s = pool.mean_service_ms / 1000.0
    interval = pool.interval_s
    speed = scenario.speed.tolist()  # lists index faster than arrays in the loop
    last_second = len(speed[0]) - 1
    error_prob = scenario.error_prob.tolist() if scenario.error_prob is not None else None
    outages = sorted(scenario.outages, key=lambda o: o.start_s)
    free: list[list[float]] = [[0.0] * pool.slots for _ in range(n_b)]
    slowdown = [1.0] * n_b
    # Outages in force (backend -> end) and those still to come.
    down_until = [-1.0] * n_b
    pending = list(outages)
    view = PoolView(free, speed, slowdown, down_until)
    bind = getattr(router, "bind", None)
    if bind is not None:
        bind(view)
    cliff = _Cliff(scenario.cliff, pool.slots) if scenario.cliff is not None else None
    cliff_b = scenario.cliff.backend if scenario.cliff is not None else -1
    completions: list[tuple[float, int, float, bool, float]] = []
    wants_done = router.wants_done
    # Requests routed to each backend and not yet answered.
    in_system = [0] * n_b

    n = len(arrivals)
    latency = [0.0] * n
    chosen = [0] * n
    failed = [False] * n
    lost = [False] * n
    draws = np.random.default_rng(scenario.seed * 104_729 + 17).random(n).tolist()
    # This interval's accumulators.
    routed = [0] * n_b
    finished: list[list[float]] = [[] for _ in range(n_b)]
    errors = [0] * n_b
    busy_s = [0.0] * n_b
    ticks: list[Telemetry] = []
    next_tick = interval
    end = scenario.duration_s

    def drain(until: float) -> None:
        while completions and completions[0][0] <= until:
            t_done, b, lat, fail, service = heapq.heappop(completions)
            in_system[b] -= 1
            finished[b].append(lat)
            if fail:
                errors[b] += 1
            if wants_done:
                queue = in_system[b] - pool.slots
                router.done(b, t_done, lat, fail, service * 1000.0, queue if queue > 0 else 0)

    def emit(at: float) -> None:
        load = np.empty(n_b)
        lat = np.empty(n_b)
        err = np.empty(n_b)
        util = np.empty(n_b)
        answers = np.empty(n_b)
        second = min(int(at), last_second)
        for b in range(n_b):
            load[b] = routed[b] / interval
            answers[b] = len(finished[b]) / interval
            util[b] = min(1.0, busy_s[b] / (pool.slots * interval))
            if finished[b]:
                lat[b] = _p95(finished[b])
                err[b] = errors[b] / len(finished[b])
            else:
                s = speed[b][second] / slowdown[b]
                wait = max(0.0, min(free[b]) - at)
                probe = wait + mean_s / s if s > 0 else timeout_s
                lat[b] = min(probe, timeout_s) * 1000.0
                err[b] = 0.0
            routed[b] = 0
            finished[b] = []
            errors[b] = 0
            busy_s[b] = 0.0
        telemetry = Telemetry(at, load, lat, err, util, answers)
        ticks.append(telemetry)
        router.tick(telemetry)

    def begin_outages(t: float) -> None:
        while pending and pending[0].start_s <= t:
            o = pending.pop(0)
            down_until[o.backend] = o.end_s
            if o.kills:
                # The process is gone: what it held fails now; it restarts empty.
                free[o.backend] = [o.end_s] * pool.slots

    # Crash times per backend: a request there whose answer would come after
    # one is lost at it.
    kills: list[list[float]] = [[] for _ in range(n_b)]
    for o in outages:  # sorted by start: the first crash claims a request
        if o.kills:
            kills[o.backend].append(o.start_s)

    times = arrivals.times.tolist()
    sizes = arrivals.sizes.tolist()
    # Hedging (Dean and Barroso's hedged requests), for routers that say
    # after how long: a request still unanswered then is sent again to
    # another backend, and the first success counts. The copy takes a slot
    # like any request (nothing is cancelled).
    hedging: Hedging | None = router if hasattr(router, "pick_other") and hasattr(router, "hedge_after_ms") else None  # type: ignore[assignment]
    hedge_after = hedging.hedge_after_ms if hedging is not None else None
    hedges: list[tuple[float, int, int]] = []
    copy_draws = np.random.default_rng(scenario.seed * 7_919 + 3).random(n).tolist()
    hedged = 0

    def place(i: int, t: float, b: int, draw: float) -> tuple[float, bool, bool]:
        """Sends request i to backend b at t: its latency (s), whether it
        failed, whether it was lost in a crash."""
        routed[b] += 1
        in_system[b] += 1
        if down_until[b] > t:
            heapq.heappush(completions, (t + fail_fast_s, b, fail_fast_s * 1000.0, True, 0.0))
            return fail_fast_s, True, False
        slots = free[b]
        start = slots[0] if slots[0] > t else t
        wait = start - t
        s = speed[b][min(int(start), last_second)]
        if b == cliff_b and cliff is not None:
            slowdown[b] = cliff.advance(t)
            s /= slowdown[b]
        if wait >= timeout_s or s <= 0.0:
            lat_s, fail, service = timeout_s, True, 0.0
        else:
            service = sizes[i] * mean_s / s
            heapq.heapreplace(slots, start + service)
            busy_s[b] += service
            if b == cliff_b and cliff is not None:
                cliff.hold(t, service)
            lat_s = wait + service
            fail = lat_s > timeout_s
            if fail:
                lat_s = timeout_s
            elif error_prob is not None and draw < error_prob[b][min(int(start), last_second)]:
                fail = True
        was_lost = False
        if kills[b]:
            for at in kills[b]:
                if t < at < t + lat_s:
                    lat_s, fail, was_lost = at - t, True, True
                    service = 0.0
                    break
        heapq.heappush(completions, (t + lat_s, b, lat_s * 1000.0, fail, service))
        return lat_s, fail, was_lost

    def hedge(th: float, i: int, first: int) -> None:
        nonlocal hedged
        assert hedging is not None
        b = hedging.pick_other(th, first)
        if b is None:
            return
        hedged += 1
        lat_s, fail, _ = place(i, th, b, copy_draws[i])
        total_ms = (th - times[i] + lat_s) * 1000.0
        if not fail and (failed[i] or total_ms < latency[i]):
            latency[i], failed[i], lost[i] = total_ms, False, False

    def advance(until: float) -> None:
        """Ticks and hedges in event-time order up to `until`, inclusive."""
        nonlocal next_tick
        while True:
            th = hedges[0][0] if hedges else math.inf
            if next_tick <= th and next_tick <= until:
                drain(next_tick)
                emit(next_tick)
                next_tick += interval
            elif th <= until:
                _, i, first = heapq.heappop(hedges)
                drain(th)
                if pending and pending[0].start_s <= th:
                    begin_outages(th)
                hedge(th, i, first)
            else:
                return

    for i in range(n):
        t = times[i]
        # Most arrivals have neither a tick nor a hedge due before them.
        if next_tick <= t or (hedges and hedges[0][0] <= t):
            advance(t)
        if completions and completions[0][0] <= t:
            drain(t)
        if pending and pending[0].start_s <= t:
            begin_outages(t)
        b = router.pick(t)
        chosen[i] = b
        lat_s, fail, lost[i] = place(i, t, b, draws[i])
        latency[i] = lat_s * 1000.0
        failed[i] = fail
        if hedge_after is not None and lat_s * 1000.0 > hedge_after:
            heapq.heappush(hedges, (t + hedge_after / 1000.0, i, b))
    advance(end)
    return Run(
        latency_ms=np.asarray(latency, dtype=np.float32),
        backend=np.asarray(chosen, dtype=np.int8),
        failed=np.asarray(failed, dtype=np.bool_),
        arrival_s=arrivals.times,
        tick_s=np.asarray([x.at_s for x in ticks]),
        load=np.asarray([x.load for x in ticks]).reshape(len(ticks), n_b),
        latency_tel_ms=np.asarray([x.latency_ms for x in ticks]).reshape(len(ticks), n_b),
        error_rate=np.asarray([x.error_rate for x in ticks]).reshape(len(ticks), n_b),
        lost=np.asarray(lost, dtype=np.bool_),
        hedged=hedged,
    )
