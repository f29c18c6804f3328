"""The forwarder against a stand-in feature store on a real port."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc
from services.common.timeutil import to_seconds
from services.router.forward import OutcomeForwarder
from services.router.outcomes import Recorded
from services.router.summaries import Summaries
from tests.fakes import serve


class Store(feature_store_pb2_grpc.FeatureStoreServicer):
    """Records each IngestOutcomes; answers the queued failures first."""

    def __init__(self) -> None:
        self.requests: list[feature_store_pb2.IngestOutcomesRequest] = []
        self.failures: list[grpc.StatusCode] = []
        self.seen: set[str] = set()

    def IngestOutcomes(self, request, context):
        self.requests.append(request)
        if self.failures:
            context.abort(self.failures.pop(0), "failing for the test")
        duplicate = request.batch_id in self.seen
        self.seen.add(request.batch_id)
        return feature_store_pb2.IngestOutcomesResponse(
            accepted=0 if duplicate else len(request.summaries), duplicate=duplicate
        )


@pytest.fixture
def rig() -> Iterator[tuple[Store, Summaries, OutcomeForwarder]]:
    store = Store()
    server, port = serve(lambda s: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(store, s))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    summaries = Summaries(bucket_s=10)
    # Flushed by hand: the thread is never started.
    yield store, summaries, OutcomeForwarder(summaries, channel, instance="r1", timeout_s=5)
    channel.close()
    server.stop(0)


def test_sends_the_pending_summaries_as_one_batch(rig):
    store, summaries, forwarder = rig
    summaries.add(Recorded("a", 1003.0, 120.0, 0.5))
    summaries.add(Recorded("b", 1013.0, None, 1.0))
    assert forwarder.flush()
    (request,) = store.requests
    assert request.batch_id == "r1-1"
    assert [(s.backend_id, to_seconds(s.bucket_start), s.quality_sum) for s in request.summaries] == [
        ("a", 1000.0, 0.5),
        ("b", 1010.0, 1.0),
    ]
    assert forwarder.sent == 2
    assert forwarder.flush() and len(store.requests) == 1  # nothing pending: no call


def test_a_lost_answer_resends_the_same_batch_before_anything_newer(rig):
    store, summaries, forwarder = rig
    store.failures = [grpc.StatusCode.UNAVAILABLE]
    summaries.add(Recorded("a", 1003.0, 120.0, None))
    assert not forwarder.flush()
    summaries.add(Recorded("a", 1023.0, 130.0, None))
    assert forwarder.flush()  # the resend
    assert forwarder.flush()  # then the newer one
    assert [r.batch_id for r in store.requests] == ["r1-1", "r1-1", "r1-2"]
    assert store.requests[0] == store.requests[1]
    assert forwarder.sent == 2 and forwarder.dropped == 0


def test_a_store_without_history_makes_the_batch_dropped_and_counted(rig):
    store, summaries, forwarder = rig
    store.failures = [grpc.StatusCode.FAILED_PRECONDITION]
    summaries.add(Recorded("a", 1003.0, 120.0, None))
    assert forwarder.flush()
    assert (forwarder.sent, forwarder.dropped) == (0, 1)
    summaries.add(Recorded("a", 1013.0, 120.0, None))
    assert forwarder.flush()
    assert store.requests[-1].batch_id == "r1-2"
