"""Assembling a PublishModel stream: metadata first, then the ONNX bytes in
chunks, never buffering more than the metadata announced."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from services.common.errors import AlreadyExists, InvalidInput
from services.predictor.model import ModelMeta, check_version_name
from services.predictor.registry import Registry, VersionInfo

_log = structlog.get_logger("upload")

# One part of the stream as plain values: the metadata or the next chunk.
Part = ModelMeta | bytes


def receive(parts: Iterable[Part], max_model_bytes: int) -> tuple[ModelMeta, bytes]:
    """Reads a whole stream. Raises InvalidInput as soon as it goes wrong,
    before reading the rest."""
    meta: ModelMeta | None = None
    chunks: list[bytes] = []
    total = 0
    for part in parts:
        if isinstance(part, ModelMeta):
            if meta is not None:
                raise InvalidInput("metadata: sent twice; send it once, as the first message")
            check_version_name(part.version)
            if part.size_bytes > max_model_bytes:
                raise InvalidInput(
                    f"size_bytes: {part.size_bytes} exceeds this predictor's limit of {max_model_bytes} bytes"
                )
            meta = part
            continue
        if meta is None:
            raise InvalidInput("chunk before metadata: the first message must carry metadata")
        total += len(part)
        if total > meta.size_bytes:
            raise InvalidInput(f"chunk: the stream carries more than size_bytes={meta.size_bytes} bytes")
        chunks.append(part)
    if meta is None:
        raise InvalidInput("metadata: missing; the first message must carry metadata")
    return meta, b"".join(chunks)


def publish(parts: Iterable[Part], registry: Registry, max_model_bytes: int) -> VersionInfo:
    """Receives a stream and publishes it. A version already stored is
    refused as soon as its metadata arrives, without reading the bytes."""

    versions: list[str] = []

    def checked(parts: Iterable[Part]) -> Iterable[Part]:
        for part in parts:
            if isinstance(part, ModelMeta):
                versions.append(part.version)
                if registry.contains(part.version):
                    raise AlreadyExists(f"version: {part.version!r} is already stored")
            yield part

    try:
        meta, onnx_bytes = receive(checked(parts), max_model_bytes)
    except InvalidInput as exc:
        _log.warning("model_rejected", version=versions[0] if versions else None, reason=str(exc))
        raise
    return registry.publish(meta, onnx_bytes)
