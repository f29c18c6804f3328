"""Sending a trained model to the predictor: its metadata, then its ONNX
bytes in chunks, over one PublishModel client stream."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common.addresses import Target
from services.common.timeutil import set_timestamp
from services.common.tls import PLAINTEXT, Tls
from services.common.tls import channel as channel_to
from services.trainer.job import PublishOutcome, ReplicaOutcome
from services.trainer.train import HistorySource, TrainedModel

CHUNK_BYTES = 1 << 20  # the most the contract allows in one chunk message
HISTORY_SOURCES = {
    HistorySource.SYNTHETIC: predictor_pb2.HISTORY_SOURCE_SYNTHETIC,
    HistorySource.CSV: predictor_pb2.HISTORY_SOURCE_CSV,
    HistorySource.FLEET: predictor_pb2.HISTORY_SOURCE_FLEET,
}


def metadata_of(model: TrainedModel, stage_only: bool = False, shadow: bool = False) -> predictor_pb2.ModelMetadata:
    metadata = predictor_pb2.ModelMetadata(
        version=model.version,
        schema_version=model.schema_version,
        feature_names=list(model.feature_names),
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        reference_inputs=model.reference_inputs.reshape(-1).tolist(),
        reference_outputs=model.reference_outputs.tolist(),
        reference_tolerance_ms=model.reference_tolerance_ms,
        horizon_s=model.horizon_s,
        metrics=model.metrics.as_map(),
        feature_importances=model.feature_importances,
        feature_means=list(model.feature_means),
        feature_stds=list(model.feature_stds),
        stage_only=stage_only,
        shadow=shadow,
    )
    set_timestamp(metadata.trained_at, model.trained_at)
    history = model.provenance
    if history.source is not None:
        metadata.history_source = HISTORY_SOURCES[history.source]
        set_timestamp(metadata.history_start_at, history.start_at)
        set_timestamp(metadata.history_end_at, history.end_at)
    return metadata


def requests(
    metadata: predictor_pb2.ModelMetadata, onnx_bytes: bytes, chunk_size: int = CHUNK_BYTES
) -> Iterator[predictor_pb2.PublishModelRequest]:
    """The client stream: the metadata first, then the bytes in order."""
    yield predictor_pb2.PublishModelRequest(metadata=metadata)
    view = memoryview(onnx_bytes)
    for start in range(0, len(view), chunk_size):
        yield predictor_pb2.PublishModelRequest(chunk=bytes(view[start : start + chunk_size]))


def publish(
    channel_or_stub: grpc.Channel | predictor_pb2_grpc.PredictorStub,
    metadata: predictor_pb2.ModelMetadata,
    onnx_bytes: bytes,
    *,
    chunk_size: int = CHUNK_BYTES,
    timeout_s: float = 60.0,
    call_metadata: Sequence[tuple[str, str]] = (),
) -> PublishOutcome:
    """Publishes one model. Any failure (the predictor unreachable, slow or
    refusing the model) is returned as the outcome's error, not raised: the
    training it follows has succeeded either way. `call_metadata` carries the
    admin token PublishModel needs."""
    if not 0 < chunk_size <= CHUNK_BYTES:
        raise ValueError(f"chunk_size: must be in (0, {CHUNK_BYTES}], got {chunk_size}")
    stub = (
        channel_or_stub
        if isinstance(channel_or_stub, predictor_pb2_grpc.PredictorStub)
        else predictor_pb2_grpc.PredictorStub(channel_or_stub)
    )
    try:
        stub.PublishModel(requests(metadata, onnx_bytes, chunk_size), timeout=timeout_s, metadata=call_metadata)
    except grpc.RpcError as exc:
        return PublishOutcome(published=False, error=f"{exc.code().name}: {exc.details()}")
    return PublishOutcome(published=True)


def publish_all(
    targets: list[Target],
    metadata: predictor_pb2.ModelMetadata,
    onnx_bytes: bytes,
    *,
    timeout_s: float = 60.0,
    call_metadata: Sequence[tuple[str, str]] = (),
    tls: Tls = PLAINTEXT,
) -> PublishOutcome:
    """Publishes one model to each predictor replica in turn and reports
    each; published only when every replica accepted it. One at a time, so
    that at most one replica is busy validating while the rest serve."""
    replicas: list[ReplicaOutcome] = []
    for target in targets:
        if target.error:
            replicas.append(ReplicaOutcome(target.address, False, target.error))
            continue
        with channel_to(target.address, tls) as channel:
            outcome = publish(channel, metadata, onnx_bytes, timeout_s=timeout_s, call_metadata=call_metadata)
        replicas.append(ReplicaOutcome(target.address, outcome.published, outcome.error))
    return PublishOutcome.of(tuple(replicas))
