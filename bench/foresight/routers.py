"""The routers compared, each at its documented defaults, and ACE.

ACE and the reactive latency breaker run the project's own code:
services.common.window.Window and services.common.features.compute turn
each interval's telemetry into features, an onnxruntime session loaded
through services.predictor.model.load_and_validate forecasts (once per
telemetry interval for the warm backends, as the router's sync loop does),
and the router's own RoutingTable decides (AceRouter).

The others are small models of well-known routers, written from their
documentation:
- round robin;
- least outstanding requests (ties broken at random);
- peak-EWMA with power of two choices (Finagle, Linkerd): per backend an
  RTT estimate that jumps to any higher RTT and otherwise decays with a
  10 s time constant (towards 0 between responses, as tower does), from a
  30 ms prior; cost = estimate x (outstanding + 1); the cheaper of two
  random backends;
- Envoy outlier detection at its defaults over Envoy's least-request (two
  random choices, the one with fewer active requests): 5 consecutive
  failures eject a backend for 30 s x the number of times it was ejected
  (at most 300 s), un-ejection is checked every 10 s interval, the
  multiplier falls by one for each 30 s a backend stays in, and at most 10% of
  the backends, but always at least one, are ejected at once. Success-rate
  detection needs 5 backends and the pool has 4, so it never runs;
- LiteLLM latency-based routing: the backend with the lowest mean of its
  last 10 latencies (a timeout counts as 1,000 s, as LiteLLM records it;
  untried backends count 0; ties at random), with a 5 s cooldown when more
  than half of at least 5 requests in the current minute failed. When every
  backend is cooling down, all are eligible (LiteLLM would fail the call)."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bench.foresight.sim import Telemetry
from services.common import features, synthetic
from services.common.window import Window, WindowLimits
from services.router.outcomes import DecisionLog
from services.router.policy import Settings, State
from services.router.sync import LATENCY_INDEX
from services.router.table import RoutingTable, Update

Floats = npt.NDArray[np.float64]


class Model(Protocol):
    """What AceRouter asks of a model: LoadedModel.score, the predictor's
    onnxruntime session, or a bench ablation's stand-in."""

    def score(self, vectors: Sequence[tuple[str, Sequence[float]]]) -> Floats: ...


# Seconds since the epoch of the run's time 0 in the telemetry ACE sees.
EPOCH = synthetic.EPOCH
# How long after a request ends its outcome reaches the router (the "ACE,
# outcomes reported" row): a proxy that sends ReportOutcomes as its requests
# end, a few at a time. docs/routing.md gives the row at other delays.
REPORT_DELAY_S = 0.02


@dataclass(frozen=True)
class Transition:
    at_s: float
    backend: int
    old: str
    new: str


@dataclass
class Trail:
    """What a breaker-like router did, for scoring and plotting."""

    transitions: list[Transition] = field(default_factory=list)
    # Per telemetry interval: the figure each breaker ran on and its state.
    risk_ms: list[Floats] = field(default_factory=list)
    states: list[list[str]] = field(default_factory=list)


class RoundRobin:
    name = "round robin"
    wants_done = False

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.turn = 0
        self.trail: Trail | None = None

    def pick(self, t: float) -> int:
        b = self.turn % self.n
        self.turn += 1
        return b

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        pass

    def tick(self, telemetry: Telemetry) -> None:
        pass


class LeastOutstanding:
    name = "least outstanding"
    wants_done = True

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.outstanding = [0] * n
        self.trail: Trail | None = None

    def pick(self, t: float) -> int:
        out = self.outstanding
        low = min(out)
        ties = [b for b in range(self.n) if out[b] == low]
        b = ties[0] if len(ties) == 1 else self.rng.choice(ties)
        out[b] += 1
        return b

    def pick_other(self, t: float, exclude: int) -> int:
        """The least-loaded backend but `exclude`: where a hedge goes."""
        out = self.outstanding
        rest = [b for b in range(self.n) if b != exclude]
        low = min(out[b] for b in rest)
        ties = [b for b in rest if out[b] == low]
        b = ties[0] if len(ties) == 1 else self.rng.choice(ties)
        out[b] += 1
        return b

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.outstanding[backend] -= 1

    def tick(self, telemetry: Telemetry) -> None:
        pass


class PeakEwma:
    name = "peak-EWMA P2C"
    wants_done = True
    DECAY_S = 10.0
    DEFAULT_RTT_MS = 30.0

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.estimate = [self.DEFAULT_RTT_MS] * n
        self.stamp = [0.0] * n
        self.pending = [0] * n
        self.trail: Trail | None = None

    def _cost(self, b: int, t: float) -> float:
        # Reading the load decays the estimate towards 0, as an RTT of 0
        # observed now would.
        self.estimate[b] *= math.exp(-(t - self.stamp[b]) / self.DECAY_S)
        self.stamp[b] = t
        return self.estimate[b] * (self.pending[b] + 1)

    def pick(self, t: float) -> int:
        a, b = self.rng.sample(range(self.n), 2)
        pick = a if self._cost(a, t) <= self._cost(b, t) else b
        self.pending[pick] += 1
        return pick

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.pending[backend] -= 1
        est = self.estimate[backend]
        if latency_ms > est:
            self.estimate[backend] = latency_ms
        else:
            w = math.exp(-(t - self.stamp[backend]) / self.DECAY_S)
            self.estimate[backend] = est * w + latency_ms * (1.0 - w)
        self.stamp[backend] = t

    def tick(self, telemetry: Telemetry) -> None:
        pass


class EnvoyOutlier:
    name = "Envoy outlier detection"
    wants_done = True
    CONSECUTIVE_5XX = 5
    BASE_EJECTION_S = 30.0
    MAX_EJECTION_S = 300.0
    MAX_EJECTION_PERCENT = 10.0

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.active = [0] * n
        self.consecutive = [0] * n
        self.ejections = [0] * n
        self.ejected_at: list[float | None] = [None] * n
        self.unejected_at = [-math.inf] * n
        self.max_ejected = max(1, math.floor(n * self.MAX_EJECTION_PERCENT / 100.0))
        self.trail: Trail | None = Trail()

    def pick(self, t: float) -> int:
        hosts = [b for b in range(self.n) if self.ejected_at[b] is None]
        a, b = self.rng.choice(hosts), self.rng.choice(hosts)
        pick = a if self.active[a] <= self.active[b] else b
        self.active[pick] += 1
        return pick

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.active[backend] -= 1
        if not failed:
            self.consecutive[backend] = 0
            return
        self.consecutive[backend] += 1
        ejected = sum(e is not None for e in self.ejected_at)
        if (
            self.consecutive[backend] >= self.CONSECUTIVE_5XX
            and self.ejected_at[backend] is None
            and ejected < self.max_ejected
        ):
            self.ejections[backend] += 1
            self.ejected_at[backend] = t
            assert self.trail is not None
            self.trail.transitions.append(Transition(t, backend, "CLOSED", "OPEN"))

    def tick(self, telemetry: Telemetry) -> None:
        # The outlier detector's 10 s interval timer.
        t = telemetry.at_s
        assert self.trail is not None
        for b in range(self.n):
            at = self.ejected_at[b]
            if at is None:
                # A backend that has stayed in for a base ejection time
                # earns one step of its multiplier back.
                if self.ejections[b] and t - self.unejected_at[b] >= self.BASE_EJECTION_S:
                    self.ejections[b] -= 1
                    self.unejected_at[b] = t
                continue
            if t - at >= min(self.BASE_EJECTION_S * self.ejections[b], self.MAX_EJECTION_S):
                self.ejected_at[b] = None
                self.unejected_at[b] = t
                self.consecutive[b] = 0
                self.trail.transitions.append(Transition(t, b, "OPEN", "CLOSED"))


class LiteLLMLatency:
    name = "LiteLLM latency + cooldown"
    wants_done = True
    WINDOW = 10
    TIMEOUT_PENALTY_MS = 1_000_000.0
    COOLDOWN_S = 5.0
    MIN_REQUESTS = 5
    FAILURE_SHARE = 0.5

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.latencies: list[deque[float]] = [deque(maxlen=self.WINDOW) for _ in range(n)]
        self.mean = [0.0] * n
        self.cool_until = [-math.inf] * n
        self.minute = [-1] * n
        self.requests = [0] * n
        self.failures = [0] * n
        self.trail: Trail | None = Trail()

    def pick(self, t: float) -> int:
        ready = [b for b in range(self.n) if self.cool_until[b] <= t] or list(range(self.n))
        low = min(self.mean[b] for b in ready)
        ties = [b for b in ready if self.mean[b] == low]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        window = self.latencies[backend]
        window.append(self.TIMEOUT_PENALTY_MS if failed else latency_ms)
        self.mean[backend] = sum(window) / len(window)
        minute = int(t // 60)
        if minute != self.minute[backend]:
            self.minute[backend], self.requests[backend], self.failures[backend] = minute, 0, 0
        self.requests[backend] += 1
        self.failures[backend] += failed
        if (
            failed
            and self.cool_until[backend] <= t
            and self.requests[backend] >= self.MIN_REQUESTS
            and self.failures[backend] > self.FAILURE_SHARE * self.requests[backend]
        ):
            self.cool_until[backend] = t + self.COOLDOWN_S
            assert self.trail is not None
            self.trail.transitions.append(Transition(t, backend, "CLOSED", "OPEN"))
            self.trail.transitions.append(Transition(t + self.COOLDOWN_S, backend, "OPEN", "CLOSED"))

    def tick(self, telemetry: Telemetry) -> None:
        pass


class AceRouter:
    """ACE as the router runs it: a services.router.table.RoutingTable (its
    breakers, rotation, probe turns and policy.choose), fed once per
    telemetry interval what the router's sync loop would feed it (the
    feature store's vectors, forecasts for the warm backends), and asked
    RoutingTable.decide for every request, with the proxy's requests in
    flight when the caller gives them. No rule of the router is copied here:
    only the sync loop's network hops are replaced by direct calls."""

    def __init__(
        self,
        name: str,
        n: int,
        settings: Settings,
        model: Model | None,
        limits: WindowLimits | None = None,
        load_aware: bool = False,
        reports: bool = False,
    ) -> None:
        self.name = name
        # Load-aware: the router is told the requests outstanding per backend
        # (DecideRequest.in_flight, as a proxy knows its own).
        self.load_aware = load_aware
        # Reports: the caller sends no counts but reports how each request
        # ended (ReportOutcomes), REPORT_DELAY_S after it did.
        self.reports = reports
        self.wants_done = load_aware or reports
        self.n = n
        self.settings = settings
        self.model = model
        self.ids = [f"backend-{b}" for b in range(n)]
        self.index = {backend_id: b for b, backend_id in enumerate(self.ids)}
        self.in_flight = dict.fromkeys(self.ids, 0)
        self.windows = [Window(limits or WindowLimits()) for _ in range(n)]
        # Event time, for the table's clock: failure scores fade in it.
        self.now = 0.0
        self.log = DecisionLog(clock=lambda: self.now) if reports else None
        self.table = RoutingTable(settings, self.log, clock=lambda: self.now)
        # Per backend, the decisions placed there that have not ended, oldest
        # first; and the ends not yet reported: (reported at, decision id,
        # backend, latency ms, failed).
        self.placed: list[deque[str]] = [deque() for _ in range(n)]
        self.unreported: deque[tuple[float, str, int, float, bool]] = deque()
        self.states = [State.CLOSED.value] * n
        self.trail: Trail | None = Trail()

    def updates(self, telemetry: Telemetry) -> list[Update]:
        """What the sync loop would apply for this interval."""
        at = EPOCH + telemetry.at_s
        vectors = []
        for b, window in enumerate(self.windows):
            window.add(at, float(telemetry.load[b]), float(telemetry.latency_ms[b]), float(telemetry.error_rate[b]))
            vectors.append(features.compute(window))
        warm = [b for b in range(self.n) if not self.is_cold(b)]
        forecasts: dict[int, float] = {}
        if self.model is not None and warm:
            scored = self.model.score([(features.SCHEMA_VERSION, vectors[b].tolist()) for b in warm])
            forecasts = {b: float(v) for b, v in zip(warm, scored, strict=True)}
        return [
            Update(
                backend_id=self.ids[b],
                as_of=at,
                points=len(self.windows[b]),
                observed_ms=float(vectors[b][LATENCY_INDEX]),
                predicted_ms=forecasts.get(b),
                features=vectors[b],
                covered_s=self.windows[b].covered_s,
            )
            for b in range(self.n)
        ]

    def is_cold(self, b: int) -> bool:
        """Whether backend b is cold, by the router's own rule."""
        window = self.windows[b]
        return self.settings.cold(len(window), window.covered_s)

    def tick(self, telemetry: Telemetry) -> None:
        self.table.apply(self.updates(telemetry))
        assert self.trail is not None
        entries = self.table.entries(self.ids)
        risk = np.empty(self.n)
        for e in entries:
            b = self.index[e.backend_id]
            new = e.breaker.state.value
            if new != self.states[b]:
                self.trail.transitions.append(Transition(telemetry.at_s, b, self.states[b], new))
                self.states[b] = new
            risk[b] = e.risk_ms if e.risk_ms is not None else np.nan
        self.trail.risk_ms.append(risk)
        self.trail.states.append(list(self.states))

    def pick(self, t: float) -> int:
        if self.reports:
            self.now = t
            self._report(t)
            decided = self.table.decide(self.ids)
            b = self.index[decided.choice.backend_id]
            self.placed[b].append(decided.decision_id)
            return b
        if self.load_aware:
            self.now = t
            backend_id = self.table.decide(self.ids, self.in_flight).choice.backend_id
            self.in_flight[backend_id] += 1
        else:
            backend_id = self.table.decide(self.ids).choice.backend_id
        return self.index[backend_id]

    def _report(self, t: float) -> None:
        """Sends the ends that are due, as the servicer's ReportOutcomes takes them."""
        assert self.log is not None
        due = self.unreported
        while due and due[0][0] <= t:
            _, decision_id, b, latency_ms, failed = due.popleft()
            receipt = self.log.report(decision_id, latency_ms=None if failed else latency_ms, failed=failed)
            if receipt.recorded is not None:
                self.table.note_outcome(self.ids[b], failed, decision_id, None if failed else latency_ms)

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        if self.reports:
            # Which of the backend's requests ended does not change a count:
            # the oldest stands for it.
            decision_id = self.placed[backend].popleft()
            self.unreported.append((t + REPORT_DELAY_S, decision_id, backend, latency_ms, failed))
            return
        if self.load_aware:
            # The proxy that counts its requests in flight also reports how
            # each ended (ReportOutcomes).
            backend_id = self.ids[backend]
            self.in_flight[backend_id] -= 1
            self.now = t
            self.table.note_outcome(backend_id, failed)
