"""Sends the pending outcome summaries to the feature store every flush
interval, in its own thread, so ReportOutcomes never waits on the network.

A batch whose answer was lost (UNAVAILABLE, a deadline) is resent as it
was, under the same batch id, before anything newer: the feature store
answers a repeated id `duplicate`, so a batch that did arrive is not
counted twice. A batch the store refuses for good (it keeps no history, or
calls it invalid) is dropped and counted."""

from __future__ import annotations

import threading

import grpc
import structlog

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.outcome_summary import to_message
from services.common.worker import Worker
from services.router.summaries import Summaries

_log = structlog.get_logger("router.forward")

MAX_BATCH = 10_000  # the feature store's cap per request
# Codes that a resend cannot cure.
_FINAL = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)


class OutcomeForwarder:
    def __init__(
        self,
        summaries: Summaries,
        feature_store: grpc.Channel,
        *,
        instance: str,
        flush_s: float = 5.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._summaries = summaries
        self._stub = feature_store_pb2_grpc.FeatureStoreStub(feature_store)
        self._instance = instance
        self._flush_s = flush_s
        self._timeout_s = timeout_s
        self._sequence = 0
        self._retry: feature_store_pb2.IngestOutcomesRequest | None = None
        self._failing: grpc.StatusCode | None = None
        self._lock = threading.Lock()  # one flush at a time
        self._worker = Worker("router-forward", self._run, join_s=timeout_s + 1)
        self.sent = 0  # summaries the store accepted
        self.dropped = 0  # summaries given up on

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Stops the thread after one last flush."""
        self._worker.stop()

    def _run(self) -> None:
        while not self._worker.stopping.wait(self._flush_s):
            self.flush()
        self.flush()

    def flush(self) -> bool:
        """Sends one batch: the one to resend, else the oldest pending
        summaries. True when nothing is left waiting for a resend."""
        with self._lock:
            request = self._retry
            if request is None:
                taken = self._summaries.take(MAX_BATCH)
                if not taken:
                    return True
                self._sequence += 1
                request = feature_store_pb2.IngestOutcomesRequest(
                    batch_id=f"{self._instance}-{self._sequence}", summaries=[to_message(s) for s in taken]
                )
            try:
                response = self._stub.IngestOutcomes(request, timeout=self._timeout_s)
            except grpc.RpcError as exc:
                code = exc.code()
                if code != self._failing:
                    _log.warning("outcomes_not_forwarded", code=code.name, details=exc.details())
                    self._failing = code
                if code in _FINAL:
                    self.dropped += len(request.summaries)
                    self._retry = None
                    return True
                self._retry = request
                return False
            if self._failing is not None:
                _log.info("outcomes_forwarded_again")
                self._failing = None
            self._retry = None
            self.sent += response.accepted
            if response.rejected:
                self.dropped += len(response.rejected)
                _log.warning(
                    "outcome_summaries_rejected", count=len(response.rejected), first=response.rejected[0].reason
                )
            return True
