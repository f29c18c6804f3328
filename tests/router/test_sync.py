"""The sync loop's Predict call: the FeatureMatrix it sends, and what it does
with an answer that does not cover the matrix."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common.features import FEATURE_NAMES, N_FEATURES
from services.router.policy import Basis, Settings
from services.router.sync import TableSync, predict_request
from services.router.table import RoutingTable
from tests.fakes import FakePredictor, serve, vector

LATENCY = FEATURE_NAMES.index("latency_ms")


def test_vectors_of_one_schema_go_as_one_matrix_in_order() -> None:
    vectors = [vector("b", 1, 200), vector("a", 1, 100), vector("b", 2, 300)]
    request = predict_request(vectors)
    assert not request.vectors
    matrix = request.matrix
    assert list(matrix.backend_ids) == ["b", "a", "b"]
    assert matrix.schema_version == vectors[0].schema_version
    assert len(matrix.values) == 3 * N_FEATURES
    assert [matrix.values[i * N_FEATURES + LATENCY] for i in range(3)] == [200, 100, 300]
    assert list(matrix.values) == [v for vec in vectors for v in vec.values]
    assert list(matrix.as_of_s) == [1, 1, 2]  # so the predictor can score each row


def test_mixed_schemas_or_lengths_go_as_vectors_so_the_error_names_one() -> None:
    odd_schema = vector("c", 1, 100)
    odd_schema.schema_version = "ace.features.v0"
    short = vector("d", 1, 100)
    del short.values[3:]
    for odd in (odd_schema, short):
        request = predict_request([vector("a", 1, 100), odd])
        assert not request.HasField("matrix")
        assert [v.backend_id for v in request.vectors] == ["a", odd.backend_id]


class VectorsOnlyPredictor(FakePredictor):
    """Once `old` is set, a predictor from before FeatureMatrix: it reads a
    matrix request as an empty one."""

    old = False

    def Predict(self, request: predictor_pb2.PredictRequest, context: grpc.ServicerContext):
        if self.old:
            request.ClearField("matrix")
        return super().Predict(request, context)


@pytest.fixture
def channel_to() -> Iterator[Callable[[FakePredictor], grpc.Channel]]:
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []

    def connect(predictor: FakePredictor) -> grpc.Channel:
        server, port = serve(lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(predictor, s))
        servers.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return channels[-1]

    yield connect
    for c in channels:
        c.close()
    for s in servers:
        s.stop(0)


def test_forecasts_from_the_matrix_answer_reach_the_table(channel_to) -> None:
    table = RoutingTable(Settings())
    channel = channel_to(FakePredictor(lambda b, latency: latency + 7))
    TableSync(table, channel, channel).apply([vector("a", 5, 100), vector("b", 5, 120, points=1)])
    entries = {e.backend_id: e for e in table.entries()}
    assert entries["a"].predicted_ms == 107 and entries["a"].basis is Basis.FORECAST
    assert entries["b"].predicted_ms is None and entries["b"].basis is Basis.COLD_START
    assert table.predictor_available


def test_an_answer_without_one_forecast_per_row_counts_as_no_forecast(channel_to) -> None:
    table = RoutingTable(Settings())
    predictor = VectorsOnlyPredictor(lambda b, latency: latency + 7)
    sync = TableSync(table, channel_to(predictor), channel_to(predictor))
    sync.apply([vector("a", 5, 100), vector("b", 5, 120)])
    assert table.predictor_available
    predictor.old = True
    sync.apply([vector("a", 6, 100), vector("b", 6, 120)])
    entries = table.entries()
    assert [(e.predicted_ms, e.basis) for e in entries] == [(None, Basis.OBSERVED_LATENCY)] * 2
    assert not table.predictor_available


def test_observed_latency_is_read_where_the_messages_names_put_it(channel_to) -> None:
    table = RoutingTable(Settings())
    predictor = FakePredictor(lambda b, latency: latency)
    predictor.down = True
    sync = TableSync(table, channel_to(predictor), channel_to(predictor))
    reordered = vector("a", 5, 0)
    reordered.values[:2] = [240.0, 5.0]  # latency first, as the names below say
    sync.apply([reordered], ("latency_ms", "load"))
    (entry,) = table.entries()
    assert (entry.observed_ms, entry.basis) == (240.0, Basis.OBSERVED_LATENCY)
