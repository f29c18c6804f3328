"""A stand-in for the predictor that speaks only PublishModel: it checks the
stream the way the contract says (metadata first, chunks of at most 1 MiB,
size and SHA-256) and records what it got."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common.errors import InvalidInput
from services.common.serving import RunningServer, start_server
from tests.fakes import ADMIN

MAX_CHUNK = 1 << 20


@dataclass(frozen=True)
class Received:
    metadata: predictor_pb2.ModelMetadata
    onnx_bytes: bytes
    chunk_sizes: list[int]


class FakePredictor(predictor_pb2_grpc.PredictorServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def PublishModel(
        self, request_iterator: Iterator[predictor_pb2.PublishModelRequest], context: grpc.ServicerContext
    ) -> predictor_pb2.ModelInfo:
        metadata: predictor_pb2.ModelMetadata | None = None
        chunks: list[bytes] = []
        for request in request_iterator:
            part = request.WhichOneof("part")
            if part == "metadata":
                if metadata is not None:
                    raise InvalidInput("metadata: sent twice")
                metadata = request.metadata
            elif part == "chunk":
                if metadata is None:
                    raise InvalidInput("chunk: before the metadata")
                if len(request.chunk) > MAX_CHUNK:
                    raise InvalidInput(f"chunk: {len(request.chunk)} bytes > 1 MiB")
                chunks.append(request.chunk)
            else:
                raise InvalidInput("part: empty message")
        if metadata is None:
            raise InvalidInput("metadata: missing")
        data = b"".join(chunks)
        if len(data) != metadata.size_bytes:
            raise InvalidInput(f"size_bytes: {metadata.size_bytes} != {len(data)}")
        if hashlib.sha256(data).hexdigest() != metadata.sha256:
            raise InvalidInput("sha256: does not match the bytes")
        with self._lock:
            self._received.append(Received(metadata, data, [len(c) for c in chunks]))
        info = predictor_pb2.ModelInfo(metadata=metadata, active=not metadata.stage_only)
        del info.metadata.reference_inputs[:]
        del info.metadata.reference_outputs[:]
        now = Timestamp()
        now.GetCurrentTime()
        info.published_at.CopyFrom(now)
        return info


def serve(fake: FakePredictor) -> RunningServer:
    return start_server(
        host="127.0.0.1",
        port=0,
        service_name="ace.v1.Predictor",
        register=lambda server: predictor_pb2_grpc.add_PredictorServicer_to_server(fake, server),
        serving=True,
        admin=ADMIN,
    )
