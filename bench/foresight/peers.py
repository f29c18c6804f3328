"""Three published routers that use what a server reports, each modelled as
its authors describe it, at their documented defaults:

- C3 replica ranking (Suresh, Canini, Schmid, Feldmann, "C3: Cutting Tail
  Latency in Cloud Data Stores via Adaptive Replica Selection", USENIX NSDI
  2015, pp. 513-527; the formula as elastic/elasticsearch implements it in
  server/src/main/java/org/elasticsearch/node/ResponseCollectorService.java);
- shortest expected delay with estimated speeds (Selen, Adan, Kapodistria,
  van Leeuwaarden, arXiv 1509.03535; C3's "clairvoyant" baseline in
  lalithsuresh/absim simulations/client.py, here with estimated rather than
  true service times);
- gRPC client-side weighted round robin on ORCA load reports (grpc/proposal
  A58-client-side-weighted-round-robin-lb-policy.md; grpc/grpc-go
  balancer/weightedroundrobin/balancer.go).

Notes on these sources are in ../shared/research/balancing.md, sections 2, 3
and 6. pick() runs for every request in pure Python, so the hot paths use
plain lists and floats."""

from __future__ import annotations

import math
import random

from bench.foresight.sim import Telemetry


class C3:
    """C3's replica ranking, without its rate control.

    Per backend: R, an EWMA of the response time the client saw; S = 1/mu, an
    EWMA of the service time the server reports; q, an EWMA of the queue
    length the server reports; os, this client's requests outstanding there.
    Score Psi = R - S + q_hat^3 * S with q_hat = 1 + os * n_clients + q
    (n_clients = 1: one proxy); the lowest score wins, over all backends,
    ties at random.

    - The EWMAs weigh a new sample by 0.3 and start at the first sample, as
      Elasticsearch's ResponseCollectorService.ALPHA and its
      ExponentiallyWeightedMovingAverage do. (Elasticsearch's service time
      arrives already averaged by the server; here the router averages the
      per-request service times with the same weight.)
    - A backend with no answer yet ranks first, as Elasticsearch's
      NodeRankComparator (server/src/main/java/org/elasticsearch/cluster/
      routing/IndexShardRoutingTable.java) puts nodes without statistics
      before ranked ones; ties at random, as Elasticsearch shuffles the
      copies before its stable sort.
    - A failed request still updates R with the latency the client saw, and
      q with the queue reported beside it. A request that was never served
      (an error answered without service, a timeout in the queue) reports
      a service time of 0; it leaves S alone, so that failing fast does not
      make a backend look fast. Until a backend's first served answer, S is
      0 and its score is just R.
    - Only the ranking is modelled: C3's per-backend CUBIC rate limiter and
      backpressure queue are left out, as Elasticsearch's adaptive replica
      selection leaves them out. So is Elasticsearch's own addition
      (adjustStats in IndexShardRoutingTable.java) of blending the winner's
      statistics into the losers' after each pick: its comment says C3 did
      not need it because Cassandra sends some requests to every replica,
      and here the queue term, which grows on the backends that do get
      traffic, sends requests back to one whose R is stale."""

    name = "C3 replica ranking"
    wants_done = True
    ALPHA = 0.3
    CLIENTS = 1

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        # -inf until the first answer: ranks the backend first whatever the
        # other terms are.
        self.response_ms = [-math.inf] * n
        self.service_ms = [0.0] * n
        self.served = [False] * n
        self.queue = [0.0] * n
        self.outstanding = [0] * n
        self.trail = None

    def scores(self) -> list[float]:
        out = []
        for b in range(self.n):
            s = self.service_ms[b]
            q_hat = 1.0 + self.outstanding[b] * self.CLIENTS + self.queue[b]
            out.append(self.response_ms[b] - s + q_hat * q_hat * q_hat * s)
        return out

    def pick(self, t: float) -> int:
        scores = self.scores()
        low = min(scores)
        ties = [b for b in range(self.n) if scores[b] == low]
        b = ties[0] if len(ties) == 1 else self.rng.choice(ties)
        self.outstanding[b] += 1
        return b

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.outstanding[backend] -= 1
        a = self.ALPHA
        if self.response_ms[backend] == -math.inf:
            self.response_ms[backend] = latency_ms
            self.queue[backend] = float(queue)
        else:
            self.response_ms[backend] += a * (latency_ms - self.response_ms[backend])
            self.queue[backend] += a * (queue - self.queue[backend])
        if service_ms > 0.0:
            if self.served[backend]:
                self.service_ms[backend] += a * (service_ms - self.service_ms[backend])
            else:
                self.service_ms[backend] = service_ms
                self.served[backend] = True

    def tick(self, telemetry: Telemetry) -> None:
        pass


class ShortestExpectedDelay:
    """Shortest expected delay with estimated speeds: for c slots, n requests
    outstanding and a mean service time s, the expected delay of one more
    request is (max(0, n - c + 1) / c + 1) * s. The lowest wins, over all
    backends, ties at random.

    s is an EWMA of the service time the server reports beside each
    successful answer (weight 0.2 per answer), from a prior of the pool's
    mean service time. It looks at the present only: no forecast."""

    name = "SED, estimated speeds"
    wants_done = True
    ALPHA = 0.2

    def __init__(self, n: int, seed: int, mean_service_ms: float = 60.0, slots: int = 2) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.slots = slots
        self.service_ms = [mean_service_ms] * n
        self.outstanding = [0] * n
        self.trail = None

    def costs(self) -> list[float]:
        c = self.slots
        return [(max(0, self.outstanding[b] - c + 1) / c + 1.0) * self.service_ms[b] for b in range(self.n)]

    def pick(self, t: float) -> int:
        costs = self.costs()
        low = min(costs)
        ties = [b for b in range(self.n) if costs[b] == low]
        b = ties[0] if len(ties) == 1 else self.rng.choice(ties)
        self.outstanding[b] += 1
        return b

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.outstanding[backend] -= 1
        if not failed and service_ms > 0.0:
            self.service_ms[backend] += self.ALPHA * (service_ms - self.service_ms[backend])

    def tick(self, telemetry: Telemetry) -> None:
        pass


class GrpcWrr:
    """gRPC's weighted_round_robin (gRFC A58) on out-of-band ORCA reports.

    - Each backend reports every telemetry interval (10 s, A58's default
      oob_reporting_period): qps = its answers per second, eps = the errors
      among them per second, utilisation = the share of its slots kept busy.
      weight = qps / (utilisation + eps / qps * error_utilization_penalty),
      penalty 1.0.
    - A report with zero qps or zero utilisation is ignored: the weight is
      not updated and the last one stays in use until it expires (A58's
      UpdateWeight pseudo-code, grpc-go's "Ignoring empty load report"). A
      backend that stops serving therefore keeps its old weight for up to
      3 minutes.
    - A weight is used once the backend has reported non-empty loads for
      blackout_period (10 s) since its first such report; one not updated for
      weight_expiration_period (180 s) expires, and the blackout starts again
      at the next non-empty report.
    - A backend without a usable weight is scheduled at the mean of the
      usable weights; with fewer than 2 usable weights, plain round robin,
      from a random start.
    - The scheduler is earliest-deadline-first as A58 describes it (Envoy's
      EDF likewise): each backend's period is 1 / weight, its first deadline
      drawn at random in [0, period], and a pick moves the backend's deadline
      on by its period. A58 rebuilds it every weight_update_period (1 s);
      weights change only when reports arrive, so it is rebuilt at each
      report, which also applies blackouts and expiries exactly, since both
      end at report times. The other rebuilds would only redraw the offsets.

    It uses the load reports only, not completions."""

    name = "gRPC WRR (ORCA)"
    wants_done = False
    BLACKOUT_S = 10.0
    EXPIRATION_S = 180.0
    ERROR_UTILIZATION_PENALTY = 1.0

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.weight = [0.0] * n
        self.non_empty_since = [math.inf] * n
        self.last_updated = [-math.inf] * n
        # Empty until at least two weights are usable: round robin.
        self.period: list[float] = []
        self.deadline: list[float] = []
        self.turn = self.rng.randrange(n)
        self.trail = None

    def pick(self, t: float) -> int:
        d = self.deadline
        if not d:
            b = self.turn % self.n
            self.turn += 1
            return b
        b = d.index(min(d))
        d[b] += self.period[b]
        return b

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        pass

    def tick(self, telemetry: Telemetry) -> None:
        now = telemetry.at_s
        for b in range(self.n):
            self._report(
                b, now, float(telemetry.answers[b]), float(telemetry.error_rate[b]), float(telemetry.utilisation[b])
            )
        self._rebuild(now)

    def _report(self, b: int, now: float, qps: float, error_rate: float, utilisation: float) -> None:
        if qps <= 0.0 or utilisation <= 0.0:
            return
        eps = qps * error_rate
        self.weight[b] = qps / (utilisation + eps / qps * self.ERROR_UTILIZATION_PENALTY)
        if self.non_empty_since[b] == math.inf:
            self.non_empty_since[b] = now
        self.last_updated[b] = now

    def usable_weight(self, b: int, now: float) -> float:
        """The weight the scheduler may use now, 0 if none (A58's GetWeight)."""
        if now - self.last_updated[b] >= self.EXPIRATION_S:
            self.non_empty_since[b] = math.inf
            return 0.0
        if now - self.non_empty_since[b] < self.BLACKOUT_S:
            return 0.0
        return self.weight[b]

    def _rebuild(self, now: float) -> None:
        weights = [self.usable_weight(b, now) for b in range(self.n)]
        usable = [w for w in weights if w > 0.0]
        if len(usable) < 2:
            self.period, self.deadline = [], []
            return
        mean = sum(usable) / len(usable)
        self.period = [1.0 / (w if w > 0.0 else mean) for w in weights]
        self.deadline = [self.rng.uniform(0.0, p) for p in self.period]
