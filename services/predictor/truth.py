"""The learning loop's truth: the latency that actually followed each
forecast, read from the feature store and handed to Loop.observe.

It polls ReadHistory every interval, from a little before the newest point
it has seen (duplicates replace, so the overlap costs nothing but reading):
that sees every point the store accepted. A store without history
(FAILED_PRECONDITION) is read through WatchFeatures instead, taking the
newest latency of each vector; a slow watcher has its changes coalesced,
so points can be missed and a horizon's maximum understated, which the
health RPC says (truth_approximate)."""

from __future__ import annotations

import math

import grpc
import structlog

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.features import latency_index
from services.common.timeutil import set_timestamp, to_seconds
from services.common.worker import Worker
from services.predictor.loop import Loop

_log = structlog.get_logger("truth")

READ_TIMEOUT_S = 30.0


class TruthFeed:
    def __init__(
        self,
        channel: grpc.Channel,
        loop: Loop,
        *,
        interval_s: float,
        first_read_s: float,
        overlap_s: float,
    ) -> None:
        self._stub = feature_store_pb2_grpc.FeatureStoreStub(channel)
        self._loop = loop
        self._interval_s = interval_s
        self._first_read_s = first_read_s  # event time read back at the first poll
        self._overlap_s = overlap_s  # read again before the newest point seen
        self._newest = -math.inf
        self._worker = Worker("truth-feed", self._run)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _run(self) -> None:
        mode = "history"
        stopping = self._worker.stopping
        while not stopping.is_set():
            try:
                if mode == "history":
                    self.poll_history()
                else:
                    self._follow_watch()
            except grpc.RpcError as exc:
                if mode == "history" and exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    mode = "watch"
                    self._loop.truth_approximate = True
                    _log.warning("truth_approximate", reason=f"feature store keeps no history: {exc.details()}")
                    continue
                if not stopping.is_set():
                    _log.warning("truth_feed_failed", mode=mode, code=exc.code().name, details=exc.details())
            stopping.wait(self._interval_s)

    def poll_history(self) -> int:
        """One ReadHistory poll; returns the points read."""
        request = feature_store_pb2.ReadHistoryRequest()
        if math.isfinite(self._newest):
            set_timestamp(request.start_time, max(self._newest - self._overlap_s, 0.0))
        else:
            request.last_s = self._first_read_s
        n = 0
        for batch in self._stub.ReadHistory(request, timeout=READ_TIMEOUT_S):
            points = [(p.backend_id, to_seconds(p.observed_at), p.latency_ms) for p in batch.points]
            if points:
                self._newest = max(self._newest, max(t for _, t, _ in points))
                self._loop.observe(points)
                n += len(points)
        return n

    def _follow_watch(self) -> None:
        call = self._worker.follow(self._stub.WatchFeatures(feature_store_pb2.WatchFeaturesRequest()))
        for message in call:
            i = latency_index(message.feature_names)
            if i is None:
                continue
            self._loop.observe(
                [(v.backend_id, to_seconds(v.as_of), v.values[i]) for v in message.vectors if len(v.values) > i]
            )
