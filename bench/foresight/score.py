"""Figures of one run, mergeable across runs.

Users: every request that arrived after the warm-up, its latency as the
caller saw it, whether it exceeded the SLO or failed (a fast error is no
better than a slow answer), whether it failed, and whether it was lost in
flight: in service or queued on a backend when that backend crashed.
Percentiles come from a log-spaced histogram (0.7% wide bins), so that runs
on many seeds merge exactly.

Breakers: a breach is a telemetry interval whose p95 latency reached the
SLO. Whether a drained backend "would have breached" cannot be seen in the
run that drained it, so the episodes to foresee are those of the
round-robin run of the same traffic and faults (the no-steering
counterfactual): the same episodes for every router. Breach intervals of a
backend less than a minute apart form one episode.
- An opening is a CLOSED → OPEN transition (a new drain). It is right when
  a breach of that backend, in its own run or in the counterfactual, is
  under way or begins within the horizon after it; otherwise it is a false
  drain.
- An episode is foreseen when an opening came at most one horizon before
  its first breach interval, at the latest on that interval (lead time 0:
  the breaker reacted to the breach's first telemetry). Lead time is from
  the earliest such opening to the episode's start.
- Flapping: every state change of every breaker, per backend-hour; and the
  share of backend-time the breakers were not closed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.foresight.routers import Trail
from bench.foresight.sim import Pool, Run

Floats = npt.NDArray[np.float64]

EDGES = np.geomspace(1.0, 5_001.0, 1_201)
MERGE_GAP_S = 60.0


@dataclass
class Users:
    hist: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(len(EDGES) - 1, dtype=np.int64))
    requests: int = 0
    over_slo: int = 0  # over the SLO or failed
    failed: int = 0
    lost: int = 0

    def add(self, other: Users) -> None:
        self.hist += other.hist
        self.requests += other.requests
        self.over_slo += other.over_slo
        self.failed += other.failed
        self.lost += other.lost

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) in ms, to the histogram's resolution."""
        if self.requests == 0:
            return float("nan")
        cum = np.cumsum(self.hist)
        i = int(np.searchsorted(cum, q / 100.0 * self.requests))
        if i >= len(self.hist) - 1:
            return float(EDGES[-1] - 1.0)  # the timeout bin
        return float(np.sqrt(EDGES[i] * EDGES[i + 1]))

    @property
    def over_share(self) -> float:
        return self.over_slo / self.requests if self.requests else float("nan")

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else float("nan")

    @property
    def lost_share(self) -> float:
        return self.lost / self.requests if self.requests else float("nan")


@dataclass
class Breakers:
    openings: int = 0
    right_openings: int = 0
    episodes: int = 0
    foreseen: int = 0
    leads_s: list[float] = field(default_factory=list)
    transitions: int = 0
    backend_hours: float = 0.0
    # Backend-intervals whose breaker was not closed, of those counted (only
    # routers that report their states per interval).
    drained_intervals: int = 0
    state_intervals: int = 0

    def add(self, other: Breakers) -> None:
        self.openings += other.openings
        self.right_openings += other.right_openings
        self.episodes += other.episodes
        self.foreseen += other.foreseen
        self.leads_s.extend(other.leads_s)
        self.transitions += other.transitions
        self.backend_hours += other.backend_hours
        self.drained_intervals += other.drained_intervals
        self.state_intervals += other.state_intervals

    @property
    def false_drains(self) -> int:
        return self.openings - self.right_openings

    @property
    def precision(self) -> float:
        return self.right_openings / self.openings if self.openings else float("nan")

    @property
    def recall(self) -> float:
        return self.foreseen / self.episodes if self.episodes else float("nan")

    def lead(self, q: float) -> float:
        return float(np.percentile(self.leads_s, q)) if self.leads_s else float("nan")

    @property
    def drained_share(self) -> float:
        return self.drained_intervals / self.state_intervals if self.state_intervals else float("nan")

    @property
    def changes_per_backend_hour(self) -> float:
        return self.transitions / self.backend_hours if self.backend_hours else float("nan")


def users(run: Run, pool: Pool, score_from_s: float) -> Users:
    keep = run.arrival_s >= score_from_s
    lat = run.latency_ms[keep]
    failed = run.failed[keep]
    # A failure counts in the timeout bin whatever its latency: for the
    # percentiles as for the SLO, an error is no answer.
    shown = np.where(failed, EDGES[-1] - 1e-6, np.clip(lat, EDGES[0], EDGES[-1] - 1e-6))
    hist, _ = np.histogram(shown, bins=EDGES)
    return Users(
        hist=hist.astype(np.int64),
        requests=int(keep.sum()),
        over_slo=int(((lat > pool.slo_ms) | failed).sum()),
        failed=int(failed.sum()),
        lost=int(run.lost[keep].sum()) if run.lost is not None else 0,
    )


def episodes(
    breach: npt.NDArray[np.bool_], tick_s: Floats, merge_gap_s: float = MERGE_GAP_S
) -> list[tuple[float, float]]:
    """(first, last) breach interval times of each episode."""
    times = tick_s[breach]
    if len(times) == 0:
        return []
    out: list[tuple[float, float]] = []
    start = prev = float(times[0])
    for t in times[1:].tolist():
        if t - prev > merge_gap_s:
            out.append((start, prev))
            start = t
        prev = t
    out.append((start, prev))
    return out


def breach_truth(run: Run, reference: Run, pool: Pool) -> npt.NDArray[np.bool_]:
    """(ticks, backends): breached in this run or in the no-steering one."""
    own = run.latency_tel_ms >= pool.slo_ms
    ref = reference.latency_tel_ms >= pool.slo_ms
    return np.asarray(own | ref, dtype=np.bool_)


def breakers(trail: Trail, run: Run, reference: Run, pool: Pool, horizon_s: float, score_from_s: float) -> Breakers:
    truth = breach_truth(run, reference, pool)
    out = Breakers(backend_hours=pool.backends * (float(run.tick_s[-1]) - score_from_s) / 3600.0)
    scored = [tr for tr in trail.transitions if tr.at_s >= score_from_s]
    out.transitions = len(scored)
    if trail.states:
        states = np.asarray(trail.states)[run.tick_s[: len(trail.states)] >= score_from_s]
        out.drained_intervals = int((states != "CLOSED").sum())
        out.state_intervals = int(states.size)
    counterfactual = reference.latency_tel_ms >= pool.slo_ms
    for b in range(pool.backends):
        either = episodes(truth[:, b], run.tick_s)
        opens = [tr.at_s for tr in scored if tr.backend == b and tr.old == "CLOSED" and tr.new == "OPEN"]
        for o in opens:
            out.openings += 1
            if any(end >= o and start <= o + horizon_s for start, end in either):
                out.right_openings += 1
        for start, _ in episodes(counterfactual[:, b], reference.tick_s):
            if start < score_from_s:
                continue
            out.episodes += 1
            early = [o for o in opens if start - horizon_s <= o <= start]
            if early:
                out.foreseen += 1
                out.leads_s.append(start - min(early))
    return out
