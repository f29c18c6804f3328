"""Shadow evaluation of an alternative policy setting (say a 250 ms
threshold against the live 300 ms) on the same live decisions.

The shadow keeps its own breakers, driven by exactly the risk figures and
event times the live table sees, and its own rotation, advanced once per
live decision, so for every decision it can say what the alternative would
have chosen. It changes nothing: the live choice is the one served.

Where the two choices differ, whether each request breached the SLO is
compared with an exact McNemar test (a two-sided binomial test on the
discordant pairs). The live side is the request's own realised latency.
The alternative's request was never sent, so its outcome is estimated by
the realised latency of another request that did go to the alternative's
backend, decided closest in time (within `match_s`); a decision with no
such request is left out and counted. That counterfactual assumes:
- a request's latency depends on the backend's state at that moment, not on
  the request itself (requests are exchangeable);
- moving this one request would not have changed that state. It would,
  at scale: a policy that moves more traffic loads the backends it moves
  it to, which this estimate cannot see. A switch that the test supports is
  therefore a reason for a controlled trial (part of the traffic on the
  alternative), not proof;
- outcomes are reported for a random sample of requests, not chosen by
  their latency.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.router.policy import Breaker, Choice, Settings, State, expire, observe
from services.router.rotation import Rotation


@dataclass(frozen=True)
class Pair:
    """One live decision whose alternative choice differed."""

    decision_id: str
    decided_at: float  # the router's clock, as in the decision log
    live_backend: str
    alternative_backend: str


class PolicyShadow:
    """Thread-safe. The router calls observe() wherever its table applies an
    update and pick() + record() for every decision it makes."""

    def __init__(self, alternative: Settings, max_pairs: int = 10_000) -> None:
        if max_pairs < 1:
            raise ValueError(f"max_pairs: must be >= 1, got {max_pairs!r}")
        self.settings = alternative
        self._lock = threading.Lock()
        self._rotation = Rotation(alternative)
        self._breakers: dict[str, Breaker] = {}
        self._pairs: deque[Pair] = deque(maxlen=max_pairs)
        self.decisions = 0
        self.differing = 0

    def observe(
        self,
        backend_id: str,
        as_of: float,
        points: int,
        predicted_ms: float | None,
        observed_ms: float,
        *,
        covered_s: float,
        capacity: float | None = None,
    ) -> None:
        """The same update the live table applies (RoutingTable.apply),
        under the alternative settings, with the live table's capacity
        estimate: only the breakers' settings differ."""
        with self._lock:
            breaker = self._breakers.get(backend_id)
            if breaker is None:
                breaker = self._breakers[backend_id] = Breaker(since=as_of)
            self._rotation.put(
                observe(
                    breaker,
                    backend_id,
                    points,
                    predicted_ms,
                    observed_ms,
                    as_of,
                    self.settings,
                    covered_s=covered_s,
                    capacity=capacity,
                )
            )

    def expire(self, at: float) -> None:
        """The fleet's telemetry has reached event time `at`: open breakers
        without a figure for probe_after_s half-open, as the live table's do."""
        with self._lock:
            for backend_id, breaker in self._breakers.items():
                if breaker.state is not State.OPEN:
                    continue
                current = self._rotation.get(backend_id)
                candidate = None if current is None else expire(breaker, current, at, self.settings)
                if candidate is not None:
                    self._rotation.put(candidate)

    def state(self, backend_id: str) -> State | None:
        with self._lock:
            breaker = self._breakers.get(backend_id)
            return breaker.state if breaker else None

    def pick(self, names: Sequence[str], in_flight: Mapping[str, int] | None = None) -> Choice:
        """What the alternative would choose for a decision among `names`
        (every known backend when empty), least-loaded when the live
        decision was. Raises as Rotation.pick does."""
        with self._lock:
            if not len(self._rotation):
                return self._rotation.round_robin(names, "shadow: no telemetry yet")
            choice, _ = self._rotation.pick(names, in_flight)
            return choice

    def record(self, decision_id: str, decided_at: float, live_backend: str, alternative_backend: str) -> None:
        with self._lock:
            self.decisions += 1
            if live_backend != alternative_backend:
                self.differing += 1
                self._pairs.append(Pair(decision_id, decided_at, live_backend, alternative_backend))

    def pairs(self) -> list[Pair]:
        """The latest decisions where the choices differed, oldest first."""
        with self._lock:
            return list(self._pairs)


@dataclass(frozen=True)
class Comparison:
    slo_ms: float
    pairs: int  # differing decisions considered
    compared: int  # of those, with both outcomes known
    missing_live: int  # no latency reported for the live request
    missing_alternative: int  # no request to the alternative's backend near enough in time
    live_breaches: int  # among the compared
    alternative_breaches: int  # among the compared (estimated)
    only_live_breached: int  # discordant: the alternative would have avoided a breach
    only_alternative_breached: int  # discordant: the alternative would have caused one
    p_value: float  # exact McNemar, two-sided; 1 with no discordant pair
    significant: bool  # p_value < alpha
    reason: str


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: under no difference each discordant
    pair falls either way with probability 1/2."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(
    pairs: Iterable[Pair],
    live_latency: Callable[[str], float | None],
    realised_near: Callable[[str, float, float], float | None],
    *,
    slo_ms: float,
    match_s: float = 5.0,
    alpha: float = 0.05,
) -> Comparison:
    """SLO breaches (latency >= slo_ms) of the live choices against the
    alternative's, on the decisions where they differ. `live_latency(id)`
    is a request's reported latency (DecisionLog.get); `realised_near(b,
    at, within_s)` a realised latency of backend b near time at
    (DecisionLog.realised_near)."""
    n = compared = missing_live = missing_alt = live_b = alt_b = only_live = only_alt = 0
    for p in pairs:
        n += 1
        live = live_latency(p.decision_id)
        if live is None:
            missing_live += 1
            continue
        alt = realised_near(p.alternative_backend, p.decided_at, match_s)
        if alt is None:
            missing_alt += 1
            continue
        compared += 1
        lb, ab = live >= slo_ms, alt >= slo_ms
        live_b += lb
        alt_b += ab
        only_live += lb and not ab
        only_alt += ab and not lb
    p_value = mcnemar_exact(only_live, only_alt)
    significant = p_value < alpha
    if not compared:
        reason = f"no comparison yet: {n} differing decisions, none with both outcomes known"
    else:
        better = "fewer" if alt_b < live_b else "more" if alt_b > live_b else "as many"
        verdict = (
            f"significant at {alpha:g}: the alternative would have {better} breaches"
            if significant
            else f"not significant at {alpha:g}: no evidence either way"
        )
        reason = (
            f"{compared} of {n} differing decisions compared: live {live_b} breaches of {slo_ms:g} ms, "
            f"alternative {alt_b} (estimated); discordant {only_live} vs {only_alt}, "
            f"McNemar p = {p_value:.3g}, {verdict}"
        )
    return Comparison(
        slo_ms=slo_ms,
        pairs=n,
        compared=compared,
        missing_live=missing_live,
        missing_alternative=missing_alt,
        live_breaches=live_b,
        alternative_breaches=alt_b,
        only_live_breached=only_live,
        only_alternative_breached=only_alt,
        p_value=p_value,
        significant=significant,
        reason=reason,
    )
