"""What operators ask of the breakers beyond their current state: which
changed lately, how many times, and how far ahead of the breach each one
opened. Read off the routing table after each update the sync loop applies,
so the table itself (and Decide) carries none of it.

Lead: a breaker that opens while the backend's observed latency is still
below the threshold has foreseen a breach; when the latency then reaches
the threshold, the event time between the two is the lead. A breaker that
opens on a latency already over the threshold has a lead of 0 (it merely
reacted). One that closes again before the latency ever reached the
threshold foresaw a breach that did not come, or was averted by draining it:
counted as unconfirmed, not as a lead."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.router.policy import Basis, State
from services.router.table import Entry, RoutingTable

# Transitions kept for the risk board.
RECENT = 50


@dataclass(frozen=True)
class Transition:
    backend_id: str
    from_state: State
    to_state: State
    at: float  # event time of the update that caused it
    risk_ms: float | None  # the figure the breaker ran on
    observed_ms: float
    basis: Basis


@dataclass(frozen=True)
class Lead:
    """The lead of a backend's latest breaker episode, once it is known."""

    opened_at: float  # event time
    seconds: float | None  # None while no breach has followed the opening yet


@dataclass(frozen=True)
class Totals:
    """Counts since the router started."""

    transitions: dict[tuple[State, State], int]
    leads: int  # openings a breach followed
    lead_sum_s: float  # their leads added up, event-time seconds
    unconfirmed: int  # openings that closed again with no breach
    last_applied_at: float  # wall clock of the last update applied; 0 before the first


class TransitionLog:
    """Thread-safe: applied() runs in the sync loop, the readers at scrape
    and page time."""

    def __init__(self, table: RoutingTable, clock: Callable[[], float] = time.time, keep: int = RECENT) -> None:
        self._table = table
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, State] = {}
        self._recent: deque[Transition] = deque(maxlen=keep)
        self._counts: Counter[tuple[State, State]] = Counter()
        self._leads: dict[str, Lead] = {}
        self._lead_count = 0
        self._lead_sum_s = 0.0
        self._unconfirmed = 0
        self._last_applied_at = 0.0

    def applied(self, backend_ids: Sequence[str]) -> None:
        """Called after the table applied updates for these backends."""
        entries = self._table.entries(backend_ids)
        threshold = self._table.settings.threshold_ms
        with self._lock:
            self._last_applied_at = self._clock()
            for e in entries:
                # A backend's breaker starts closed when the table first sees it.
                before = self._states.get(e.backend_id, State.CLOSED)
                now = e.breaker.state
                self._states[e.backend_id] = now
                if now is not before:
                    self._transition(e, before, now, threshold)
                else:
                    self._follow(e, threshold)

    def _transition(self, e: Entry, before: State, now: State, threshold: float) -> None:
        self._counts[(before, now)] += 1
        self._recent.append(Transition(e.backend_id, before, now, e.breaker.since, e.risk_ms, e.observed_ms, e.basis))
        if before is State.CLOSED and now is State.OPEN:
            self._leads[e.backend_id] = Lead(e.breaker.since, None)
            self._follow(e, threshold)
        elif now is State.CLOSED:
            lead = self._leads.get(e.backend_id)
            if lead is not None and lead.seconds is None:
                self._unconfirmed += 1
                del self._leads[e.backend_id]

    def _follow(self, e: Entry, threshold: float) -> None:
        lead = self._leads.get(e.backend_id)
        if lead is None or lead.seconds is not None or e.observed_ms < threshold:
            return
        seconds = max(0.0, e.as_of - lead.opened_at)
        self._leads[e.backend_id] = Lead(lead.opened_at, seconds)
        self._lead_count += 1
        self._lead_sum_s += seconds

    def totals(self) -> Totals:
        with self._lock:
            return Totals(
                dict(self._counts), self._lead_count, self._lead_sum_s, self._unconfirmed, self._last_applied_at
            )

    def recent(self) -> list[Transition]:
        """The latest transitions, newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def lead(self, backend_id: str) -> Lead | None:
        with self._lock:
            return self._leads.get(backend_id)
