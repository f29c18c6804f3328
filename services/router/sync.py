"""Keeps the routing table current: watches the feature store, asks the
predictor for forecasts of the backends whose features changed (one batched
call), and applies both to the table. Runs in its own thread so that Decide
never waits on the network. A broken watch is reopened with backoff; a
predictor that fails leaves the table on observed latency until it answers
again."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import grpc
import numpy as np
import structlog

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, predictor_pb2, predictor_pb2_grpc, telemetry_pb2
from services.common import features
from services.common.timeutil import to_seconds
from services.common.worker import Worker
from services.router.dependency import CallBreaker
from services.router.table import ModelFacts, RoutingTable, Update

_log = structlog.get_logger("router.sync")

# The foresight benchmark reads observed latency where this loop does.
LATENCY_INDEX = features.LATENCY_INDEX


def predict_request(vectors: Sequence[telemetry_pb2.FeatureVector]) -> predictor_pb2.PredictRequest:
    """The vectors as one FeatureMatrix when they share a schema: the
    predictor reads a thousand rows of it in microseconds, where a thousand
    FeatureVector messages cost it milliseconds. Vectors of mixed schemas or
    lengths go as they are, so the predictor's error names the odd one."""
    schema = vectors[0].schema_version if vectors else ""
    width = len(vectors[0].values) if vectors else 0
    if any(v.schema_version != schema or len(v.values) != width for v in vectors):
        return predictor_pb2.PredictRequest(vectors=vectors)
    request = predictor_pb2.PredictRequest()
    matrix = request.matrix
    matrix.schema_version = schema
    matrix.backend_ids.extend([v.backend_id for v in vectors])
    # The event time of each row, so the predictor can score its forecasts
    # once their horizon has passed (the learning loop).
    matrix.as_of_s.extend([to_seconds(v.as_of) for v in vectors])
    extend = matrix.values.extend
    for v in vectors:
        extend(v.values)
    return request


class TableSync:
    def __init__(
        self,
        table: RoutingTable,
        feature_store: grpc.Channel,
        predictor: grpc.Channel,
        *,
        predict_timeout_s: float = 1.0,
        max_backoff_s: float = 2.0,
        predictor_breaker: CallBreaker | None = None,
        on_applied: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self._table = table
        # Told which backends each apply updated (the breaker transition log).
        self._on_applied = on_applied
        self._features = feature_store_pb2_grpc.FeatureStoreStub(feature_store)
        self._predictor = predictor_pb2_grpc.PredictorStub(predictor)
        self._predict_timeout_s = predict_timeout_s
        # A slow predictor would cost every feature update a full deadline;
        # once it keeps failing, updates apply on observed latency at once.
        self._predictor_breaker = predictor_breaker or CallBreaker("predictor")
        self._max_backoff_s = max_backoff_s
        self._worker = Worker("router-sync", self._run)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _run(self) -> None:
        backoff = 0.05
        stopping = self._worker.stopping
        while not stopping.is_set():
            try:
                call = self._worker.follow(self._features.WatchFeatures(feature_store_pb2.WatchFeaturesRequest()))
                for response in call:
                    self._table.set_status(feature_store_connected=True)
                    backoff = 0.05
                    self.apply(response.vectors, response.feature_names)
            except grpc.RpcError as exc:
                if not stopping.is_set():
                    _log.debug("watch_broken", code=str(exc.code()))
            self._table.set_status(feature_store_connected=False)
            stopping.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    def apply(self, vectors: Sequence[telemetry_pb2.FeatureVector], feature_names: Sequence[str] = ()) -> None:
        """Forecasts the warm vectors and applies everything to the table;
        `feature_names` are the message's, when it names them."""
        if not vectors:
            return
        at = features.latency_index(feature_names)
        settings = self._table.settings
        warm = [v for v in vectors if not settings.cold(v.points_in_window, v.window_covered_s)]
        forecasts, proven = self._forecast(warm) if warm else ({}, False)
        updates = [
            Update(
                backend_id=v.backend_id,
                as_of=to_seconds(v.as_of),
                points=v.points_in_window,
                observed_ms=v.values[at] if at is not None and len(v.values) > at else 0.0,
                predicted_ms=forecasts.get(v.backend_id),
                features=np.asarray(v.values, dtype=np.float64),
                proven=proven,
                covered_s=v.window_covered_s,
            )
            for v in vectors
        ]
        changed = self._table.apply(updates)
        if self._on_applied is not None:
            self._on_applied(changed)

    def _forecast(self, vectors: Sequence[telemetry_pb2.FeatureVector]) -> tuple[dict[str, float], bool]:
        """The forecasts by backend id, and whether they may drive the
        breakers (the predictor's trust verdict on their model)."""
        if not self._predictor_breaker.allow():
            return {}, False  # the table already says predictor_available=False
        request = predict_request(vectors)
        try:
            response = self._predictor.Predict(request, timeout=self._predict_timeout_s)
        except grpc.RpcError as exc:
            # Only running out of the deadline counts: a fast failure costs
            # the sync loop nothing, and the next call may find it back.
            self._predictor_breaker.record(exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED)
            if self._table.predictor_available:
                _log.warning("predict_failed", code=str(exc.code()), details=exc.details())
            self._table.set_status(predictor_available=False)
            return {}, False
        self._predictor_breaker.record(True)
        if request.HasField("matrix"):
            ids, forecasts = request.matrix.backend_ids, response.predicted_latency_ms
            if len(forecasts) != len(ids):
                # A predictor that predates FeatureMatrix reads an empty request.
                _log.warning("predict_answer_incomplete", rows=len(ids), forecasts=len(forecasts))
                self._table.set_status(predictor_available=False)
                return {}, False
            by_id = dict(zip(ids, forecasts, strict=True))
        else:
            by_id = {p.backend_id: p.predicted_latency_ms for p in response.predictions}
        if response.model_version != self._table.model.version:
            self._table.set_status(model=self._model_facts(response.model_version))
        self._table.set_status(predictor_available=True, trust=(response.model_proven, response.trust_reason))
        return by_id, response.model_proven

    def _model_facts(self, version: str) -> ModelFacts:
        try:
            info = self._predictor.GetActiveModel(
                predictor_pb2.GetActiveModelRequest(), timeout=self._predict_timeout_s
            )
        except grpc.RpcError:
            return ModelFacts(version=version)
        meta = info.metadata
        if meta.version != version:
            return ModelFacts(version=version)
        return ModelFacts(
            version=version,
            horizon_s=meta.horizon_s,
            feature_names=tuple(meta.feature_names),
            importances=dict(meta.feature_importances),
            means=tuple(meta.feature_means),
            stds=tuple(meta.feature_stds),
        )
