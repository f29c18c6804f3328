"""Two routers no real router can be, to bound what placement could gain on
the same traffic and faults. Each is handed the pool itself (sim.PoolView):
when every slot of every backend frees and every backend's true speed at
every second. They know the present exactly but not the future: a backend
that is about to crash looks as good to them as its speed says, so a router
that sees the crash coming can beat them there, and only there.

- Oracle shortest expected delay (the "clairvoyant" strategy of C3's
  simulator, lalithsuresh/absim, with exact state instead of queue counts):
  each request goes where its expected completion is earliest: the moment
  a slot frees there, plus one mean-size service at that backend's true
  speed then. A backend that refuses work (speed 0) is never chosen while
  another is not.
- Central queue (late binding: JIQ, Lu et al. 2011; Sparrow, SOSP'13): one
  FIFO queue at the proxy; a request is dispatched only into a free slot,
  the earliest one of any backend, so the pool behaves as one multi-server
  queue. Slots that free at the same moment go to the faster backend. The
  simulation places the request on that backend's earliest slot, which is
  exactly this queue's order: requests arrive in order, each takes the
  earliest free slot."""

from __future__ import annotations

import math

from bench.foresight.routers import Trail
from bench.foresight.sim import PoolView, Telemetry


class _Oracle:
    wants_done = False

    def __init__(self, n: int, seed: int, mean_service_ms: float = 60.0) -> None:
        self.n = n
        self.mean_s = mean_service_ms / 1000.0
        self.view: PoolView | None = None
        self.trail: Trail | None = None

    def bind(self, view: PoolView) -> None:
        self.view = view

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        pass

    def tick(self, telemetry: Telemetry) -> None:
        pass


class OracleSed(_Oracle):
    name = "oracle shortest expected delay"

    def pick(self, t: float) -> int:
        assert self.view is not None, "the simulation binds the pool before the first request"
        view = self.view
        best, best_at = 0, math.inf
        for b in range(self.n):
            slot = view.free[b][0]
            start = slot if slot > t else t
            speed = view.speed_at(b, start)
            at = start + self.mean_s / speed if speed > 0 else math.inf
            if at < best_at:
                best, best_at = b, at
        return best


class CentralQueue(_Oracle):
    name = "central queue"

    def pick(self, t: float) -> int:
        assert self.view is not None, "the simulation binds the pool before the first request"
        view = self.view
        best, best_key = 0, (math.inf, 0.0)
        for b in range(self.n):
            slot = view.free[b][0]
            start = slot if slot > t else t
            speed = view.speed_at(b, start)
            if speed <= 0:
                continue
            key = (start, -speed)
            if key < best_key:
                best, best_key = b, key
        return best
