"""Turning what is known about the backends into decisions, the same way in
the router and in the client library: the candidate names are checked, the
rotation counter advances, each half-open backend alternates its probe
turns, and policy.choose decides. Plain values and no lock: the router holds
its table's lock around it, a client its own.

What a decision needs of a backend is kept as a ready Candidate, replaced
whenever the backend changes, so a decision builds nothing per candidate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from services.common.errors import FailedPrecondition, InvalidInput
from services.router.policy import WEIGHTED_CYCLE, Candidate, Choice, Settings, State, choose, round_robin, weighted

# How far one outcome moves a failure score towards 1 (failed) or 0: four
# failures in a row take a backend from 0 to 0.68.
ERROR_STEP = 0.25
# A score this low is dropped: the backend counts as not failing.
FORGET_BELOW = 0.01
NO_TELEMETRY_REASON = "no telemetry received yet for any backend: round robin over the candidates as given"
# Longer cycles (a decision naming no one in a large fleet) are not kept.
MAX_CYCLE = 4096
# Candidate lists with a cycle kept at once; more, and they all start afresh.
MAX_CYCLES = 1024


class _Cycle:
    """The choices for one candidate list, one per turn of the cycle,
    computed the first time each turn comes."""

    __slots__ = ("candidates", "choices")

    def __init__(self, candidates: list[Candidate], length: int) -> None:
        self.candidates = candidates
        self.choices: list[Choice | None] = [None] * length


def _cycle_length(candidates: Sequence[Candidate], settings: Settings) -> int | None:
    """How many turns the choices among these candidates take to repeat;
    None when they do not repeat by turn alone: a half-open breaker's probe
    turns keep their own count, and in-flight counts change between picks.
    A weighted rotation repeats every WEIGHTED_CYCLE turns, half-open
    breakers or not."""
    if weighted(candidates, settings):
        return WEIGHTED_CYCLE
    eligible = 0
    for c in candidates:
        if c.state is State.HALF_OPEN or c.in_flight is not None:
            return None
        eligible += c.state is State.CLOSED
    return len(candidates) * max(eligible, 1)


def check_names(names: Sequence[str]) -> None:
    """InvalidInput naming the field for an empty or repeated candidate."""
    if "" in names:
        raise InvalidInput(f"candidates[{list(names).index('')}]: must not be empty")
    if len(set(names)) != len(names):
        raise InvalidInput("candidates: each backend may appear once")


class Rotation:
    """Decisions without in-flight counts repeat with the turn until a
    backend or a setting changes, so each turn's choice is kept for its
    candidate list (a cycle) and made once: wording a choice's reason was
    most of what a Decide cost beyond gRPC itself."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # The feature store no longer feeds what is known: reasons say so.
        self._stale = False
        # Cycles by candidate list (the empty one: every backend); None for
        # a list whose choices do not repeat by turn.
        self._cycles: dict[tuple[str, ...], _Cycle | None] = {}
        self._by_id: dict[str, Candidate] = {}
        # Every candidate sorted by backend id, for decisions that name none;
        # None once a backend was added or removed, rebuilt when next needed.
        self._everyone: list[Candidate] | None = []
        self._position: dict[str, int] = {}
        # Turns each half-open backend was due since it entered that state:
        # it takes the even ones.
        self._probes: dict[str, int] = {}
        self._half_open: set[str] = set()
        self._turn = 0
        # Backends with recent failures: (failure score in [0, 1], when it
        # was last updated). Only failing backends are kept.
        self._failing: dict[str, tuple[float, float]] = {}

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        if settings != self._settings:
            self._settings = settings
            self._cycles.clear()

    @property
    def stale(self) -> bool:
        return self._stale

    @stale.setter
    def stale(self, stale: bool) -> None:
        if stale != self._stale:
            self._stale = stale
            self._cycles.clear()

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._by_id

    def get(self, backend_id: str) -> Candidate | None:
        return self._by_id.get(backend_id)

    def backend_ids(self) -> list[str]:
        """Every known backend, sorted."""
        return [c.backend_id for c in self._all()]

    def put(self, candidate: Candidate) -> None:
        """Adds a backend or replaces what is known about it. The candidate
        is kept as given, so the caller must not change it afterwards. A
        breaker that changed state starts its probe alternation afresh."""
        backend_id = candidate.backend_id
        self._cycles.clear()
        old = self._by_id.get(backend_id)
        if old is None or old.state is not candidate.state:
            self._probes.pop(backend_id, None)
        if candidate.state is State.HALF_OPEN:
            self._half_open.add(backend_id)
        else:
            self._half_open.discard(backend_id)
        self._by_id[backend_id] = candidate
        if old is None:
            self._everyone = None
        elif self._everyone is not None:
            self._everyone[self._position[backend_id]] = candidate

    def replace_all(self, candidates: Sequence[Candidate]) -> None:
        """Forgets every backend not among `candidates` and puts the rest."""
        keep = {c.backend_id for c in candidates}
        self._cycles.clear()
        for gone in [b for b in self._by_id if b not in keep]:
            del self._by_id[gone]
            self._probes.pop(gone, None)
            self._half_open.discard(gone)
            self._failing.pop(gone, None)
        self._everyone = None
        for c in candidates:
            self.put(c)

    def _all(self) -> list[Candidate]:
        if self._everyone is None:
            self._everyone = [self._by_id[b] for b in sorted(self._by_id)]
            self._position = {c.backend_id: i for i, c in enumerate(self._everyone)}
        return self._everyone

    def note_outcome(self, backend_id: str, failed: bool, at: float) -> None:
        """One request's outcome on a backend, at `at` (seconds, the clock
        picks are given). Each outcome moves the backend's failure score a
        quarter of the way to 1 (failed) or 0 (answered); without outcomes
        the score fades with Settings.error_decay_s. A backend with no
        failure on record is not tracked, so answers cost a lookup."""
        entry = self._failing.get(backend_id)
        if entry is None:
            if not failed:
                return
            score = 0.0
        else:
            score = self._faded(entry, at)
        score += ERROR_STEP * ((1.0 if failed else 0.0) - score)
        if score < FORGET_BELOW:
            self._failing.pop(backend_id, None)
        else:
            self._failing[backend_id] = (score, at)

    def failure_score(self, backend_id: str, at: float) -> float:
        entry = self._failing.get(backend_id)
        return 0.0 if entry is None else self._faded(entry, at)

    def _faded(self, entry: tuple[float, float], at: float) -> float:
        score, since = entry
        decay = self.settings.error_decay_s
        if at <= since or decay <= 0:
            return score
        return score * math.exp(-(at - since) / decay)

    def pick(
        self, names: Sequence[str], in_flight: Mapping[str, int] | None = None, now: float = 0.0
    ) -> tuple[Choice, Candidate | None]:
        """Chooses among the named backends, or among every known one when
        none are named; returns the choice and the chosen backend's
        candidate (None when nothing is known yet and the choice is plain
        round robin). With `in_flight` (requests outstanding per backend id;
        missing ones count 0) the choice is least-loaded, and a backend's
        recent failures (note_outcome, faded to `now`) count as load.
        InvalidInput names an empty, repeated or unknown candidate;
        FailedPrecondition when none is named and none is known."""
        by_id = self._by_id
        if not in_flight:
            key = names if type(names) is tuple else tuple(names)
            try:
                cycle = self._cycles[key]
            except KeyError:
                cycle = self._cycles[key] = self._cycle(key)
            if cycle is not None:
                choices = cycle.choices
                turn = self._turn % len(choices)
                self._turn += 1
                choice = choices[turn]
                if choice is None:
                    choice = choices[turn] = choose(cycle.candidates, turn, self._settings, self._stale)
                return choice, by_id[choice.backend_id]
        candidates: list[Candidate] | None = None
        if names and by_id:
            try:
                candidates = [by_id[backend_id] for backend_id in names]
            except KeyError:
                candidates = None
            if candidates is None or len(set(names)) != len(names):
                check_names(names)
                i = next(i for i, backend_id in enumerate(names) if backend_id not in by_id)
                raise InvalidInput(f"candidates[{i}]: unknown backend {names[i]!r}")
        else:
            check_names(names)
            if not by_id:
                return self.round_robin(names, NO_TELEMETRY_REASON), None
            candidates = self._all()
        turn = self._turn
        self._turn += 1
        if self._half_open:
            self._probe(candidates[turn % len(candidates)])
        if not in_flight:
            choice = choose(candidates, turn, self.settings, self.stale)
            return choice, by_id[choice.backend_id]
        # The candidates are ours and the caller holds the lock: set the
        # counts for this choice and clear them before anyone else looks.
        penalty = self.settings.error_penalty
        # Looked up only when some backend is failing and failures count.
        failing = self._failing if penalty else None
        try:
            for c in candidates:
                c.in_flight = in_flight.get(c.backend_id, 0)
                if failing:
                    entry = failing.get(c.backend_id)
                    if entry is not None:
                        c.error_load = penalty * self._faded(entry, now)
            choice = choose(candidates, turn, self.settings, self.stale)
        finally:
            for c in candidates:
                c.in_flight = None
                c.error_load = 0.0
        return choice, by_id[choice.backend_id]

    def _cycle(self, names: tuple[str, ...]) -> _Cycle | None:
        """A new cycle for these names; None when their choices must be
        made one by one (and for names pick refuses, so it refuses them)."""
        if len(self._cycles) >= MAX_CYCLES:
            self._cycles.clear()
        by_id = self._by_id
        if not by_id or len(set(names)) != len(names):
            return None
        found = [by_id.get(b) for b in names] if names else self._all()
        candidates = [c for c in found if c is not None]
        if len(candidates) != len(found):
            return None
        length = _cycle_length(candidates, self._settings)
        if length is None or length > MAX_CYCLE:
            return None
        return _Cycle(candidates, length)

    def _probe(self, primary: Candidate) -> None:
        """Tells each half-open backend whether this turn is one of its due
        ones, and counts the turn of the one whose turn it is."""
        for backend_id in self._half_open:
            # The candidates are ours (see put), so setting this in place is safe.
            self._by_id[backend_id].probe_due = self._probes.get(backend_id, 0) % 2 == 0
        if primary.state is State.HALF_OPEN:
            self._probes[primary.backend_id] = self._probes.get(primary.backend_id, 0) + 1

    def round_robin(self, names: Sequence[str], reason: str) -> Choice:
        """Plain rotation over the names as given, or over every known
        backend when none are named, breakers ignored. FailedPrecondition
        when there is nothing to rotate over."""
        check_names(names)
        pool = names if names else [c.backend_id for c in self._all()]
        if not pool:
            raise FailedPrecondition("candidates: empty, and no backend is known yet (no telemetry received)")
        turn = self._turn
        self._turn += 1
        return round_robin(pool, turn, reason)
