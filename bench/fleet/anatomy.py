"""What the generated fleet's breach episodes are: the injected event each
lies in (within a horizon of it), or none, and how many points each lasts.
Recall counts every episode alike, so this bounds what a forecast of the
injected events can reach: an episode with no event near it is a burst of
arrivals (on the reported seeds, nearly all on one small replica per seed),
which nothing in the telemetry before it announces."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bench.fleet import score
from bench.fleet.generator import FleetTelemetry

NONE = "none"


@dataclass
class Anatomy:
    # Episodes by the kind of event they lie in (NONE: no event near).
    by_kind: Counter[str] = field(default_factory=Counter)
    # Of those, the episodes one point long.
    single: Counter[str] = field(default_factory=Counter)
    # Episodes with no event near, on the backend that has most of them
    # (summed over histories when added).
    none_on_one: int = 0

    @property
    def episodes(self) -> int:
        return sum(self.by_kind.values())

    def add(self, other: Anatomy) -> None:
        self.by_kind.update(other.by_kind)
        self.single.update(other.single)
        self.none_on_one += other.none_on_one


def anatomy(f: FleetTelemetry, from_s: float, threshold_ms: float, horizon_s: float) -> Anatomy:
    """The episodes of the points at or after `from_s` (unix seconds)."""
    keep = f.times >= from_s
    times, latency = f.times[keep], f.latency_ms[keep]
    out = Anatomy()
    none_per_backend: Counter[int] = Counter()
    for b, own in enumerate(score.breach_episodes(latency, times, threshold_ms, f.interval_s)):
        near = [e for e in f.events if e.backend == b]
        for first, last in own:
            kinds = [e.kind for e in near if f.start + e.start_s - horizon_s <= first <= f.start + e.end_s + horizon_s]
            kind = kinds[0] if kinds else NONE
            out.by_kind[kind] += 1
            points = int(np.count_nonzero((times >= first) & (times <= last)))
            out.single[kind] += points == 1
            none_per_backend[b] += kind == NONE
    out.none_on_one = max(none_per_backend.values(), default=0)
    return out
