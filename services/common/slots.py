"""A cap on the calls that hold a worker thread for as long as the client
keeps them open (watch and long read streams), so that they can never take
every thread of a server and starve its unary calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from services.common.errors import ResourceExhausted


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    @contextmanager
    def hold(self, method: str) -> Iterator[None]:
        """Holds one slot for the block; RESOURCE_EXHAUSTED at once when all
        are taken (waiting would hold the very thread the cap protects)."""
        if not self._free.acquire(blocking=False):
            raise ResourceExhausted(f"{method}: all {self.limit} stream slots are in use; retry later")
        try:
            yield
        finally:
            self._free.release()
