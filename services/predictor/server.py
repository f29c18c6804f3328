"""The ace.v1.Predictor servicer: converts protobuf to plain values, calls
the registry and the model, converts back. Errors are raised as
services.common.errors and mapped to statuses by the shared interceptor."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common import tls
from services.common.config import METRICS_OFF
from services.common.drift import DriftState
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.metrics import MetricsSetup
from services.common.serving import RunningServer, start_server
from services.common.timeutil import set_timestamp, to_seconds
from services.predictor import upload
from services.predictor.config import MIB, PredictorConfig
from services.predictor.gate import Verdict
from services.predictor.loop import Health, Loop, LoopThreads
from services.predictor.metrics import ModelCollector, PredictorMetrics
from services.predictor.model import ModelMeta
from services.predictor.registry import Registry, Role, VersionInfo
from services.predictor.scoring import Limits, Scorer
from services.predictor.trust import GATE_OFF, Trust, TrustSettings, TrustVerdict
from services.predictor.truth import TruthFeed

SERVICE_NAME: str = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name
# Chunks are at most 1 MiB and a full Predict batch of 10000 vectors is about
# 1.5 MiB; the headroom keeps a client's framing overhead from mattering.
MAX_RECEIVE_BYTES = 8 * MIB


# By name, which is how meta.json keeps them: readable, and a number
# renumbered by mistake would not silently change what a stored version says.
HISTORY_SOURCES = {
    predictor_pb2.HistorySource.Name(number): number
    for number in (
        predictor_pb2.HISTORY_SOURCE_SYNTHETIC,
        predictor_pb2.HISTORY_SOURCE_CSV,
        predictor_pb2.HISTORY_SOURCE_FLEET,
    )
}
HISTORY_SOURCE_NAMES = {number: name for name, number in HISTORY_SOURCES.items()}


def meta_from_proto(m: predictor_pb2.ModelMetadata) -> ModelMeta:
    return ModelMeta(
        version=m.version,
        schema_version=m.schema_version,
        feature_names=tuple(m.feature_names),
        sha256=m.sha256,
        size_bytes=m.size_bytes,
        horizon_s=m.horizon_s,
        trained_at=to_seconds(m.trained_at),
        reference_inputs=tuple(m.reference_inputs),
        reference_outputs=tuple(m.reference_outputs),
        reference_tolerance_ms=m.reference_tolerance_ms,
        metrics=dict(m.metrics),
        feature_importances=dict(m.feature_importances),
        feature_means=tuple(m.feature_means),
        feature_stds=tuple(m.feature_stds),
        stage_only=m.stage_only,
        shadow=m.shadow,
        # A number this predictor does not know (a newer trainer's) is unsaid.
        history_source=HISTORY_SOURCE_NAMES.get(m.history_source, ""),
        history_start_at=to_seconds(m.history_start_at) if m.HasField("history_start_at") else 0.0,
        history_end_at=to_seconds(m.history_end_at) if m.HasField("history_end_at") else 0.0,
    )


def meta_to_proto(meta: ModelMeta) -> predictor_pb2.ModelMetadata:
    """The metadata as published, reference rows omitted."""
    m = predictor_pb2.ModelMetadata(
        version=meta.version,
        schema_version=meta.schema_version,
        feature_names=meta.feature_names,
        sha256=meta.sha256,
        size_bytes=meta.size_bytes,
        reference_tolerance_ms=meta.reference_tolerance_ms,
        horizon_s=meta.horizon_s,
        metrics=meta.metrics,
        feature_importances=meta.feature_importances,
        feature_means=meta.feature_means,
        feature_stds=meta.feature_stds,
        stage_only=meta.stage_only,
        shadow=meta.shadow,
    )
    set_timestamp(m.trained_at, meta.trained_at)
    if meta.history_source:
        m.history_source = HISTORY_SOURCES[meta.history_source]
    if meta.history_start_at:
        set_timestamp(m.history_start_at, meta.history_start_at)
    if meta.history_end_at:
        set_timestamp(m.history_end_at, meta.history_end_at)
    return m


ROLES = {
    None: predictor_pb2.MODEL_ROLE_UNSPECIFIED,
    Role.ACTIVE: predictor_pb2.ACTIVE,
    Role.CANDIDATE: predictor_pb2.CANDIDATE,
    Role.PREVIOUS: predictor_pb2.PREVIOUS,
}


VERDICTS = {
    Verdict.WAIT: predictor_pb2.WAIT,
    Verdict.PROMOTE: predictor_pb2.PROMOTE,
    Verdict.REFUSE: predictor_pb2.REFUSE,
    Verdict.ROLL_BACK: predictor_pb2.ROLL_BACK,
    Verdict.KEEP: predictor_pb2.KEEP,
}


def info_to_proto(info: VersionInfo) -> predictor_pb2.ModelInfo:
    out = predictor_pb2.ModelInfo(metadata=meta_to_proto(info.meta), active=info.active, role=ROLES[info.role])
    set_timestamp(out.published_at, info.published_at)
    return out


def _drift_to_proto(state: DriftState, threshold: float) -> predictor_pb2.DriftStatus:
    out = predictor_pb2.DriftStatus(
        samples=state.samples, mean=state.mean, statistic=state.statistic, threshold=threshold, fires=state.fires
    )
    if state.fired_at is not None:
        set_timestamp(out.last_fired_at, state.fired_at)
    return out


def health_to_proto(health: Health | None) -> predictor_pb2.ModelHealth:
    if health is None:
        return predictor_pb2.ModelHealth(enabled=False)
    out = predictor_pb2.ModelHealth(
        enabled=True,
        window_s=health.window_s,
        breach_threshold_ms=health.threshold_ms,
        error_drift=_drift_to_proto(health.error_drift, health.error_drift_threshold),
        pending_forecasts=health.counts.pending,
        unlabelled_forecasts=health.counts.unlabelled,
        truth_approximate=health.truth_approximate,
        dropped_shadow_batches=health.dropped_batches,
    )
    if math.isfinite(health.newest_point_at):
        set_timestamp(out.newest_point_at, health.newest_point_at)
    for v in health.versions:
        s = v.scores
        out.versions.add(
            version=v.version,
            role=ROLES[v.role],
            labels=s.labels,
            mae_ms=s.mae_ms,
            log_mae=s.log_mae,
            breach_precision=s.breach_precision,
            breach_recall=s.breach_recall,
            predicted_breaches=s.predicted_breaches,
            actual_breaches=s.actual_breaches,
            horizon_s=v.horizon_s,
            proven=v.trust.proven,
            trust_reason=v.trust.reason,
            forecast_scale=v.scale,
        )
    for name, state in health.feature_drift:
        out.feature_drift.add(feature=name, status=_drift_to_proto(state, health.feature_drift_threshold))
    if health.last_gate is not None:
        g, d = health.last_gate, health.last_gate.decision
        out.last_gate.verdict = VERDICTS[d.verdict]
        out.last_gate.reason = d.reason
        out.last_gate.labels = d.labels
        out.last_gate.subject_version = g.subject_version
        out.last_gate.reference_version = g.reference_version
        out.last_gate.subject_error = d.subject_error
        out.last_gate.reference_error = d.reference_error
        out.last_gate.limit = d.limit
        if math.isfinite(g.decided_at):
            set_timestamp(out.last_gate.decided_at, g.decided_at)
    return out


# Without the learning loop nothing scores the forecasts, so nothing earns trust.
NO_LOOP = TrustVerdict(Trust.UNPROVEN, "learning loop off (no --feature-store-addr): nothing scores the forecasts")


def _parts(requests: Iterable[predictor_pb2.PublishModelRequest]) -> Iterator[upload.Part]:
    for i, request in enumerate(requests):
        kind = request.WhichOneof("part")
        if kind == "metadata":
            yield meta_from_proto(request.metadata)
        elif kind == "chunk":
            yield request.chunk
        else:
            raise InvalidInput(f"part: message {i} carries neither metadata nor a chunk")


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(
        self,
        registry: Registry,
        max_model_bytes: int,
        loop: Loop | None = None,
        metrics: PredictorMetrics | None = None,
        trust: TrustSettings | None = None,
    ) -> None:
        self._registry = registry
        # The gate's settings: the loop's when it runs, else these.
        self._trust_settings = loop.settings.trust if loop is not None else trust or TrustSettings()
        self._metrics = metrics
        self._max_model_bytes = max_model_bytes
        self._loop = loop
        # Told whenever a version becomes active; start() points it at health.
        self.on_active: Callable[[], None] = lambda: None

    def Predict(
        self, request: predictor_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predictor_pb2.PredictResponse:
        # One read of the active model: the whole call is answered by it even
        # if a publish swaps versions meanwhile.
        model = self._registry.active
        if model is None:
            raise FailedPrecondition("no active model")
        vectors = request.vectors
        verdict = self._trust(model.version)
        scale = self._loop.scale(model.version) if self._loop is not None else 1.0
        response = predictor_pb2.PredictResponse(
            model_version=model.version, model_proven=verdict.proven, trust_reason=verdict.reason, forecast_scale=scale
        )
        if request.HasField("matrix"):
            if vectors:
                raise InvalidInput("matrix: send vectors or a matrix, not both")
            matrix = request.matrix
            x = model.input_of_matrix(matrix.schema_version, len(matrix.backend_ids), matrix.values)
            raw = model.predict(x)
            response.predicted_latency_ms.extend((raw * scale).tolist() if scale != 1.0 else raw.tolist())
            if self._metrics is not None:
                self._metrics.predicted(len(raw))
            if self._loop is not None:
                # The raw forecasts are scored: calibration is fitted on them.
                self._loop.record(model, matrix.backend_ids, matrix.as_of_s, x, raw.tolist())
            return response
        x = model.input_of([(v.schema_version, v.values) for v in vectors])
        out = model.predict(x).tolist()
        if self._metrics is not None:
            self._metrics.predicted(len(out))
        add = response.predictions.add
        for v, p in zip(vectors, out, strict=True):
            add(backend_id=v.backend_id, predicted_latency_ms=p * scale)
        if self._loop is not None:
            ids = [v.backend_id for v in vectors]
            self._loop.record(model, ids, [to_seconds(v.as_of) for v in vectors], x, out)
        return response

    def _trust(self, version: str) -> TrustVerdict:
        if self._loop is not None:
            return self._loop.trust(version)
        return GATE_OFF if not self._trust_settings.enabled else NO_LOOP

    def PublishModel(
        self, request_iterator: Iterator[predictor_pb2.PublishModelRequest], context: grpc.ServicerContext
    ) -> predictor_pb2.ModelInfo:
        info = upload.publish(_parts(request_iterator), self._registry, self._max_model_bytes)
        if info.active:
            self.on_active()
        return info_to_proto(info)

    def GetActiveModel(
        self, request: predictor_pb2.GetActiveModelRequest, context: grpc.ServicerContext
    ) -> predictor_pb2.ModelInfo:
        return info_to_proto(self._registry.active_info())

    def ListModels(
        self, request: predictor_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> predictor_pb2.ListModelsResponse:
        return predictor_pb2.ListModelsResponse(models=[info_to_proto(i) for i in self._registry.list()])

    def Rollback(
        self, request: predictor_pb2.RollbackRequest, context: grpc.ServicerContext
    ) -> predictor_pb2.ModelInfo:
        info = self._registry.rollback(request.to_version or None)
        self.on_active()
        return info_to_proto(info)

    def GetModelHealth(
        self, request: predictor_pb2.GetModelHealthRequest, context: grpc.ServicerContext
    ) -> predictor_pb2.ModelHealth:
        return health_to_proto(self._loop.health() if self._loop is not None else None)


def start(config: PredictorConfig, registry: Registry | None = None) -> RunningServer:
    """Restores the stored versions and starts serving; health is SERVING
    from the moment a version is active (at once, when one was restored)."""
    registry = registry if registry is not None else Registry(config.model_dir)
    loop = None
    if config.feature_store_addr:
        limits = Limits(window_s=config.score_window_s, settle_s=config.score_settle_s)
        loop = Loop(registry, Scorer(limits, config.breach_threshold_ms), config.loop)
    setup = None if config.metrics_port == METRICS_OFF else MetricsSetup(config.metrics_port)
    metrics = None
    if setup is not None:
        metrics = PredictorMetrics(setup.registry)
        registry.on_swap = metrics.swapped
        setup.registry.register(ModelCollector(registry, loop))
    servicer = PredictorServicer(registry, config.max_model_bytes, loop, metrics, config.loop.trust)
    running = start_server(
        host=config.host,
        port=config.port,
        service_name=SERVICE_NAME,
        register=lambda server: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, server),
        serving=registry.active is not None,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)],
        admin=config.admin,
        tls=config.tls,
        metrics=setup,
    )
    servicer.on_active = lambda: running.set_serving(True)
    if loop is not None:
        _start_loop(running, loop, config)
    # A publish that landed before the hook was set told no one; serving
    # only ever turns on, so this cannot undo a later one.
    if registry.active is not None:
        running.set_serving(True)
    return running


def _start_loop(running: RunningServer, loop: Loop, config: PredictorConfig) -> None:
    channel = tls.channel(config.feature_store_addr, config.tls)
    feed = TruthFeed(
        channel,
        loop,
        interval_s=config.score_interval_s,
        first_read_s=config.score_window_s or Limits().keep_s,
        # Points reach the store out of order within a backend's window, and
        # backends lag one another: read that much again each poll.
        overlap_s=config.score_settle_s + Limits().keep_s,
    )
    threads = LoopThreads(loop, config.score_interval_s)
    feed.start()
    threads.start()
    running.on_closing.append(feed.stop)
    running.on_closing.append(threads.stop)
    running.on_stop.append(channel.close)
