"""The ace.v1.Predictor servicer: converts protobuf to plain values, calls
the registry and the model, converts back. Errors are raised as
services.common.errors and mapped to statuses by the shared interceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.serving import RunningServer, start_server
from services.common.timeutil import set_timestamp, to_seconds
from services.predictor import upload
from services.predictor.config import MIB, PredictorConfig
from services.predictor.model import ModelMeta
from services.predictor.registry import Registry, VersionInfo

SERVICE_NAME: str = predictor_pb2.DESCRIPTOR.services_by_name["Predictor"].full_name
# Chunks are at most 1 MiB and a full Predict batch of 10000 vectors is about
# 1.5 MiB; the headroom keeps a client's framing overhead from mattering.
MAX_RECEIVE_BYTES = 8 * MIB


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
    )
    set_timestamp(m.trained_at, meta.trained_at)
    return m


def info_to_proto(info: VersionInfo) -> predictor_pb2.ModelInfo:
    out = predictor_pb2.ModelInfo(metadata=meta_to_proto(info.meta), active=info.active)
    set_timestamp(out.published_at, info.published_at)
    return out


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
    def __init__(self, registry: Registry, max_model_bytes: int) -> None:
        self._registry = registry
        self._max_model_bytes = max_model_bytes
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
        response = predictor_pb2.PredictResponse(model_version=model.version)
        if request.HasField("matrix"):
            if vectors:
                raise InvalidInput("matrix: send vectors or a matrix, not both")
            matrix = request.matrix
            predicted = model.score_matrix(matrix.schema_version, len(matrix.backend_ids), matrix.values)
            response.predicted_latency_ms.extend(predicted.tolist())
            return response
        predicted = model.score([(v.schema_version, v.values) for v in vectors])
        add = response.predictions.add
        for v, p in zip(vectors, predicted.tolist(), strict=True):
            add(backend_id=v.backend_id, predicted_latency_ms=p)
        return response

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


def start(config: PredictorConfig, registry: Registry | None = None) -> RunningServer:
    """Restores the stored versions and starts serving; health is SERVING
    from the moment a version is active (at once, when one was restored)."""
    registry = registry if registry is not None else Registry(config.model_dir)
    servicer = PredictorServicer(registry, config.max_model_bytes)
    running = start_server(
        host=config.host,
        port=config.port,
        service_name=SERVICE_NAME,
        register=lambda server: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, server),
        serving=registry.active is not None,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)],
        admin=config.admin,
    )
    servicer.on_active = lambda: running.set_serving(True)
    # A publish that landed before the hook was set told no one; serving
    # only ever turns on, so this cannot undo a later one.
    if registry.active is not None:
        running.set_serving(True)
    return running
