"""A background loop's thread and how it ends, written once for every
loop a service or the client library runs beside its calls.

The body loops until `stopping` is set and sleeps with
`stopping.wait(seconds)`, so a stop ends a sleep at once. A body blocked
reading a stream cannot see the event; it passes the call to `follow`, and
stop() cancels it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar


class Cancellable(Protocol):
    def cancel(self) -> object: ...


C = TypeVar("C", bound=Cancellable)


class Worker:
    def __init__(self, name: str, body: Callable[[], None], *, join_s: float = 5.0) -> None:
        self.stopping = threading.Event()
        self._join_s = join_s
        self._call: Cancellable | None = None
        self._thread = threading.Thread(target=body, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def follow(self, call: C) -> C:
        """Keeps `call` to cancel at stop; cancels it at once when the stop
        came while it was being opened."""
        self._call = call
        if self.stopping.is_set():
            call.cancel()
        return call

    def stop(self) -> None:
        """Sets `stopping`, cancels the call followed, and waits up to
        join_s for the body to return (a daemon thread still running then
        dies with the process)."""
        self.stopping.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_s)

    def is_alive(self) -> bool:
        return self._thread.is_alive()
