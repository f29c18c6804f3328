"""Change feeds for streaming watchers. Each watcher gets a set of the keys
that changed since it last looked; a key that changes ten times while the
watcher is slow is sent once, with its newest value. Memory per watcher is
therefore bounded by the number of keys, and a slow client never holds back
the writer."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Subscription:
    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._dirty: set[str] = set()
        self._closed = False

    def wait(self, timeout_s: float) -> set[str] | None:
        """The keys changed since the last call, waiting up to timeout_s for
        one; an empty set on time-out, None once the feed or this
        subscription is closed."""
        with self._feed._cond:
            if not self._dirty and not self._closed:
                self._feed._cond.wait(timeout_s)
            if self._closed:
                return None
            dirty, self._dirty = self._dirty, set()
            return dirty

    def close(self) -> None:
        self._feed._remove(self)


class ChangeFeed:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._subs: list[Subscription] = []

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._cond:
            self._subs.append(sub)
        return sub

    @property
    def subscribers(self) -> int:
        with self._cond:
            return len(self._subs)

    def publish(self, keys: Iterable[str]) -> None:
        keys = set(keys)
        if not keys:
            return
        with self._cond:
            for sub in self._subs:
                sub._dirty |= keys
            self._cond.notify_all()

    def close(self) -> None:
        """Ends every subscription, so stream handlers return and a server can stop."""
        with self._cond:
            for sub in self._subs:
                sub._closed = True
            self._subs.clear()
            self._cond.notify_all()

    def _remove(self, sub: Subscription) -> None:
        with self._cond:
            sub._closed = True
            if sub in self._subs:
                self._subs.remove(sub)
            self._cond.notify_all()
