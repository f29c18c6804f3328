"""The four columns of issue 14's table (and a fifth that keeps them honest), computed from a breaker's
transitions and the telemetry it ran on. Open loop: the telemetry is
recorded, so what the breakers did changes nothing in it, and a breach is
what the fleet did with no steering at all.

- A breach is a point whose latency is at or over the threshold. The breach
  points of one backend less than max(60 s, two intervals) apart form one
  episode (one point under the threshold does not end it at any interval) (bench.foresight.score.episodes), from its first to its last point.
- Breach recall: the share of episodes that were caught. An episode is
  caught when its backend's breaker opened (CLOSED → OPEN) no earlier than
  one horizon before its start and no later than its last point, or when the
  breaker was already not CLOSED as the episode began (it had opened more
  than a horizon earlier and stayed open or half-open).
- Lead: the episode's start minus the earliest such opening; negative when
  the breaker opened after the breach began (a reaction), one horizon when
  it was already open from earlier. The median is over caught episodes.
- Precision of openings: the share of openings followed by a breach of that
  backend: an episode under way at the opening or beginning within one
  horizon after it (the rule bench.foresight.score applies).
- Openings per backend-hour, fault-free: openings at fault-free points,
  divided by the fault-free backend-hours. A point of a backend is fault-free
  when it lies outside every busy span of that backend widened by one horizon
  before (a forecast may rightly open that early) and SETTLE_S after (the
  backlog drains, the breaker recovers). Busy spans are the injected events
  (near misses included: a surge that stops short of the threshold is not
  "nothing wrong", though an opening on it is a false one for precision) and
  the breach episodes.
- Share of time not closed: of all backend-points, those at which the
  breaker was OPEN or HALF_OPEN. It keeps the recall honest: a breaker that
  never closes "catches" every breach."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.foresight.routers import Transition
from bench.foresight.score import MERGE_GAP_S, episodes

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

# Time after a busy span that is not fault-free yet: a backlog of the
# generator's longest timeout drains, and a breaker opened on the span runs
# through min_open_s and recovery_s (30 + 60 s) with room to spare.
SETTLE_S = 600.0


@dataclass
class Columns:
    """One row of the table; rows of several histories add up."""

    episodes: int = 0
    caught: int = 0
    leads_s: list[float] = field(default_factory=list)
    openings: int = 0
    right_openings: int = 0
    free_openings: int = 0
    free_backend_hours: float = 0.0
    not_closed_points: int = 0
    points: int = 0

    def add(self, other: Columns) -> None:
        self.episodes += other.episodes
        self.caught += other.caught
        self.leads_s.extend(other.leads_s)
        self.openings += other.openings
        self.right_openings += other.right_openings
        self.free_openings += other.free_openings
        self.free_backend_hours += other.free_backend_hours
        self.not_closed_points += other.not_closed_points
        self.points += other.points

    @property
    def recall(self) -> float:
        return self.caught / self.episodes if self.episodes else math.nan

    @property
    def precision(self) -> float:
        return self.right_openings / self.openings if self.openings else math.nan

    @property
    def median_lead_s(self) -> float:
        return float(np.median(self.leads_s)) if self.leads_s else math.nan

    @property
    def not_closed_share(self) -> float:
        return self.not_closed_points / self.points if self.points else math.nan

    @property
    def free_per_backend_hour(self) -> float:
        return self.free_openings / self.free_backend_hours if self.free_backend_hours else math.nan


def breach_episodes(
    latency_ms: Floats, times: Floats, threshold_ms: float, interval_s: float
) -> list[list[tuple[float, float]]]:
    """Per backend, (first, last) point time of each breach episode."""
    gap = max(MERGE_GAP_S, 2 * interval_s)
    over = latency_ms >= threshold_ms
    return [episodes(over[:, b], times, gap) for b in range(latency_ms.shape[1])]


def fault_free(
    times: Floats, spans: Sequence[Sequence[tuple[float, float]]], horizon_s: float, settle_s: float = SETTLE_S
) -> Mask:
    """(points, backends): outside every busy span of the backend, widened."""
    free = np.ones((len(times), len(spans)), dtype=np.bool_)
    for b, own in enumerate(spans):
        for start, end in own:
            free[(times >= start - horizon_s) & (times <= end + settle_s), b] = False
    return free


def _state_at(transitions: Sequence[Transition], at: float) -> str:
    state = "CLOSED"
    for tr in transitions:
        if tr.at_s > at:
            break
        state = tr.new
    return state


def _not_closed(transitions: Sequence[Transition], times: Floats) -> int:
    """How many of these times find the breaker OPEN or HALF_OPEN."""
    if not transitions:
        return 0
    last = np.searchsorted([tr.at_s for tr in transitions], times, side="right") - 1
    open_after = np.asarray([tr.new != "CLOSED" for tr in transitions])
    return int(open_after[last[last >= 0]].sum())


def score(
    transitions: Sequence[Transition],
    times: Floats,
    latency_ms: Floats,
    events: Sequence[Sequence[tuple[float, float]]],
    *,
    threshold_ms: float,
    horizon_s: float,
    interval_s: float,
) -> Columns:
    """The columns for one history. `transitions` carry unix seconds and
    are in time order; `events` lists each backend's injected spans."""
    backends = latency_ms.shape[1]
    found = breach_episodes(latency_ms, times, threshold_ms, interval_s)
    free = fault_free(times, [list(events[b]) + found[b] for b in range(backends)], horizon_s)
    out = Columns(free_backend_hours=float(free.sum()) * interval_s / 3600.0, points=int(latency_ms.size))
    for b in range(backends):
        own = [tr for tr in transitions if tr.backend == b]
        out.not_closed_points += _not_closed(own, times)
        opens = [tr.at_s for tr in own if tr.old == "CLOSED" and tr.new == "OPEN"]
        for o in opens:
            out.openings += 1
            out.right_openings += any(end >= o and start <= o + horizon_s for start, end in found[b])
            i = int(np.searchsorted(times, o))
            out.free_openings += bool(i < len(times) and free[i, b])
        for start, end in found[b]:
            out.episodes += 1
            early = [o for o in opens if start - horizon_s <= o <= end]
            if early:
                out.caught += 1
                out.leads_s.append(start - min(early))
            elif _state_at(own, start) != "CLOSED":
                out.caught += 1
                out.leads_s.append(horizon_s)
    return out
