"""A small breaker on one of the router's own dependencies (the predictor):
after `failures` calls in a row fail (the router counts calls that run out
of their deadline), it stops calling for
`cooldown_s`, so a slow dependency costs one deadline per cool-down instead
of one per feature update; meanwhile the table runs on observed latency.
Plain logic, no grpc; the clock enters through the constructor."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

import structlog

_log = structlog.get_logger("router.dependency")


class CallState(enum.Enum):
    # Calls go through; consecutive failures are counted.
    CLOSED = "closed"
    # `failures` calls in a row failed: no calls until the cool-down ends.
    OPEN = "open"
    # The cool-down ended: one trial call decides between CLOSED and OPEN.
    HALF_OPEN = "half_open"


class CallBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 3,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown_s < 0:
            raise ValueError(f"failures must be >= 1 and cooldown_s >= 0, got {failures}, {cooldown_s}")
        self.name = name
        self._failures = failures
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CallState.CLOSED
        self._in_a_row = 0
        self._opened_at = 0.0

    def allow(self) -> bool:
        """Whether to make the call now. After the cool-down, the first
        caller gets the trial call and the others wait for its outcome."""
        with self._lock:
            if self.state is CallState.OPEN and self._clock() - self._opened_at >= self._cooldown_s:
                self._move(CallState.HALF_OPEN)
                return True
            return self.state is CallState.CLOSED

    def record(self, ok: bool) -> None:
        """The outcome of a call that allow() let through."""
        with self._lock:
            self._in_a_row = 0 if ok else self._in_a_row + 1
            if ok and self.state is not CallState.CLOSED:
                self._move(CallState.CLOSED)
            elif not ok and (self.state is CallState.HALF_OPEN or self._in_a_row >= self._failures):
                self._move(CallState.OPEN)

    def _move(self, to: CallState) -> None:
        """The one place the state changes; logs each change once."""
        if to is CallState.OPEN:
            self._opened_at = self._clock()
        if to is not self.state:
            _log.info("dependency_breaker", dependency=self.name, state=to.value, failures_in_a_row=self._in_a_row)
        self.state = to
