"""RouterClient: routing decisions inside a high-throughput proxy, without
one RPC per request.

It follows the router's WatchRoutingTable stream in a background thread,
keeps a copy of the routing table, and picks locally with the router's own
rotation and policy (rotation.py, policy.py), so a local pick answers as
Decide would: the same breakers, skips, probes and fallbacks. (Its rotation
counter is its own: picks spread over the fleet the same way, not in step
with other proxies.)

A pick among backends whose breakers are closed or open (none half-open,
whose probe turns keep state of their own) depends only on the turn: policy
.choose hands a skipped turn to the eligible backends in order, so the
choices repeat every len(candidates) x len(eligible) turns. The client keeps
that cycle per candidate list, filled as turns come and dropped whenever the
table changes, and such a pick is an index into it; other picks go through
the rotation (with a counter of their own, so the two kinds interleave as
two round robins).

When the stream breaks, the table it holds can no longer be trusted to say
which breakers are open: the client keeps answering, round robin over its
last known backends (action ROUND_ROBIN, and the reason says why), and
reconnects with jittered exponential backoff. The first full table of the
new stream puts the breakers back in charge.

    with RouterClient(grpc.insecure_channel("localhost:50053")) as router:
        router.wait(lambda r: r.connected, timeout_s=5)
        choice = router.pick(["gpu-a", "gpu-b"])  # policy.Choice
        send(request, to=choice.backend_id, retry_on=choice.fallbacks)

Errors are the router's: InvalidInput for an empty, repeated or unknown
candidate, FailedPrecondition when none is named and no backend is known.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

import grpc
import structlog

from ace.v1 import router_pb2, router_pb2_grpc
from services.common.worker import Worker
from services.router import wire
from services.router.policy import Candidate, Choice, Settings
from services.router.rotation import Rotation

_log = structlog.get_logger("router.client")

DISCONNECTED_REASON = "router stream down: round robin over the last known routing table"
NO_TABLE_REASON = "no routing table received yet: round robin over the candidates as given"


class RouterClient:
    """Thread-safe: pick from any number of threads. Construct, then start()
    (or use it as a context manager); close() stops the background stream."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        min_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        on_update: Callable[[router_pb2.RoutingTable], None] | None = None,
    ) -> None:
        self._stub = router_pb2_grpc.RouterStub(channel)
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        # Called in the stream's thread after each message is applied; keep it quick.
        self._on_update = on_update
        # Picks take the lock itself (cheaper to enter than a Condition);
        # wait() waits on the condition built over it. Reentrant, so that a
        # wait() predicate may call candidate() or pick().
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rotation = Rotation(Settings())
        self._connected = False
        self._table = router_pb2.RoutingTable()  # the newest table-wide fields, without rows
        self._worker = Worker("router-client", self._run)
        # Streams opened so far; a reconnect opens another.
        self.streams_opened = 0

    # --- lifecycle ---

    def start(self) -> RouterClient:
        self._worker.start()
        return self

    def close(self) -> None:
        self._worker.stop()
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def __enter__(self) -> RouterClient:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- deciding ---

    def pick(self, candidates: Sequence[str] = (), in_flight: Mapping[str, int] | None = None) -> Choice:
        """Chooses among the candidates (every backend of the table when none
        are named), as the router's Decide would; round robin while the
        stream is down. `in_flight`, the caller's requests outstanding per
        backend, makes the choice least-loaded, as in a DecideRequest."""
        with self._lock:
            if not self._connected:
                reason = DISCONNECTED_REASON if len(self._rotation) else NO_TABLE_REASON
                return self._rotation.round_robin(candidates, reason)
            if in_flight:
                return self._rotation.pick(candidates, in_flight, time.monotonic())[0]
            return self._rotation.pick(candidates)[0]

    def report(self, backend_id: str, failed: bool) -> None:
        """A request's outcome on a backend, as ReportOutcomes tells the
        router of a decided one: recent failures count as load in picks
        given `in_flight`, with the router's error_penalty and decay."""
        with self._lock:
            self._rotation.note_outcome(backend_id, failed, time.monotonic())

    # --- what it knows ---

    @property
    def connected(self) -> bool:
        """Whether the stream is open and has delivered a full table."""
        return self._connected

    @property
    def table(self) -> router_pb2.RoutingTable:
        """The table-wide fields of the newest message (model version,
        threshold, links); its rows are not kept here."""
        return self._table

    def candidate(self, backend_id: str) -> Candidate | None:
        """What the table it holds says about one backend; None if unknown."""
        with self._cond:
            return self._rotation.get(backend_id)

    def backends(self) -> list[str]:
        """The backends of the table it holds, sorted."""
        with self._cond:
            return self._rotation.backend_ids()

    def wait(self, predicate: Callable[[RouterClient], bool], timeout_s: float) -> bool:
        """Waits until predicate(self) holds, re-checking after every message
        and every change of connection; False on time-out."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)

    # --- the stream ---

    def _run(self) -> None:
        backoff = self._min_backoff_s
        stopping = self._worker.stopping
        while not stopping.is_set():
            call = self._worker.follow(self._stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest()))
            self.streams_opened += 1
            try:
                for message in call:
                    self._apply(message)
                    backoff = self._min_backoff_s
            except grpc.RpcError as exc:
                if not stopping.is_set():
                    _log.debug("router_stream_broken", code=str(exc.code()))
            self._set_disconnected()
            # Jitter, so that proxies cut off together do not return together.
            stopping.wait(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff_s)

    def _apply(self, message: router_pb2.RoutingTable) -> None:
        # Converted before taking the lock, so picks wait only for the puts.
        candidates = [wire.candidate(route) for route in message.backends]
        settings = wire.settings(message)
        status = router_pb2.RoutingTable(
            model_version=message.model_version,
            threshold_ms=message.threshold_ms,
            horizon_s=message.horizon_s,
            predictor_available=message.predictor_available,
            feature_store_connected=message.feature_store_connected,
            cold_start_points=message.cold_start_points,
            warm_after_s=message.warm_after_s,
            open_penalty=message.open_penalty,
            error_penalty=message.error_penalty,
            error_decay_s=message.error_decay_s,
            share_by_capacity=message.share_by_capacity,
            open_share=message.open_share,
            rate_aware=message.rate_aware,
            capacity_deadband=message.capacity_deadband,
        )
        with self._cond:
            self._rotation.settings = settings
            self._rotation.stale = not message.feature_store_connected
            if message.partial:
                for c in candidates:
                    self._rotation.put(c)
            else:
                self._rotation.replace_all(candidates)
                if not self._connected:
                    _log.info("router_stream_open", backends=len(candidates))
                self._connected = True
            self._table = status
            self._cond.notify_all()
        if self._on_update is not None:
            self._on_update(message)

    def _set_disconnected(self) -> None:
        with self._cond:
            if self._connected:
                _log.info("router_stream_lost", backends=len(self._rotation))
            self._connected = False
            self._cond.notify_all()
