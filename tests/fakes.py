"""Small in-process stand-ins for the feature store and the predictor, served
on real ports, for testing the router's handling of its dependencies."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    telemetry_pb2,
)
from services.common.admin import AdminAuth
from services.common.features import FEATURE_NAMES, LATENCY_INDEX, N_FEATURES, SCHEMA_VERSION
from services.common.timeutil import to_timestamp


def vector(
    backend_id: str, t: float, latency_ms: float, points: int = 30, covered_s: float | None = None
) -> telemetry_pb2.FeatureVector:
    """A vector of a window of `points` points; unless `covered_s` says
    otherwise they came 10 s apart."""
    values = [0.0] * N_FEATURES
    values[LATENCY_INDEX] = latency_ms
    return telemetry_pb2.FeatureVector(
        backend_id=backend_id,
        schema_version=SCHEMA_VERSION,
        values=values,
        as_of=to_timestamp(t),
        points_in_window=points,
        window_covered_s=10.0 * max(points - 1, 0) if covered_s is None else covered_s,
    )


class FakeFeatureStore(feature_store_pb2_grpc.FeatureStoreServicer):
    """WatchFeatures sends whatever the test puts on `batches`."""

    def __init__(self) -> None:
        self.batches: queue.Queue[list[telemetry_pb2.FeatureVector] | None] = queue.Queue()

    def WatchFeatures(self, request, context) -> Iterator[feature_store_pb2.GetFeaturesResponse]:
        yield feature_store_pb2.GetFeaturesResponse(feature_names=FEATURE_NAMES, schema_version=SCHEMA_VERSION)
        while context.is_active():
            try:
                batch = self.batches.get(timeout=0.1)
            except queue.Empty:
                continue
            if batch is None:
                return
            yield feature_store_pb2.GetFeaturesResponse(
                feature_names=FEATURE_NAMES, schema_version=SCHEMA_VERSION, vectors=batch
            )


class FakePredictor(predictor_pb2_grpc.PredictorServicer):
    """Predicts `forecast(backend_id, observed latency)`; aborts with
    UNAVAILABLE while `down` is set. Says its model is `proven` (the trust
    gate's verdict) unless told otherwise."""

    def __init__(self, forecast: Callable[[str, float], float], version: str = "fake-1", proven: bool = True) -> None:
        self.forecast = forecast
        self.version = version
        self.down = False
        self.proven = proven

    def Predict(self, request, context) -> predictor_pb2.PredictResponse:
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "predictor down for the test")
        index = LATENCY_INDEX
        if request.HasField("matrix"):
            m = request.matrix
            k = len(m.values) // max(len(m.backend_ids), 1)
            return predictor_pb2.PredictResponse(
                model_version=self.version,
                model_proven=self.proven,
                predicted_latency_ms=[self.forecast(b, m.values[i * k + index]) for i, b in enumerate(m.backend_ids)],
            )
        return predictor_pb2.PredictResponse(
            model_version=self.version,
            model_proven=self.proven,
            predictions=[
                predictor_pb2.Prediction(
                    backend_id=v.backend_id, predicted_latency_ms=self.forecast(v.backend_id, v.values[index])
                )
                for v in request.vectors
            ],
        )

    def GetActiveModel(self, request, context) -> predictor_pb2.ModelInfo:
        return predictor_pb2.ModelInfo(
            metadata=predictor_pb2.ModelMetadata(version=self.version, horizon_s=300), active=True
        )


def serve(register: Callable[[grpc.Server], None]) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


# The admin token the tests' predictors and trainers share, and the call
# metadata that carries it.
ADMIN = AdminAuth(token="test-admin-token-0123456789")
ADMIN_CALL = ADMIN.metadata()
# For tests about something else than admin auth: admin calls need no token,
# and a trainer still sends the token when it publishes.
OPEN_ADMIN = AdminAuth(token=ADMIN.token, insecure=True)
