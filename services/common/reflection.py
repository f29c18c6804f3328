"""Server reflection that carries the .proto comments. grpcio-reflection
answers from the runtime descriptor pool, whose descriptors lost their
comments when protoc generated the Python code; grpcurl's `describe` then
shows bare messages. `make protos` also writes a descriptor set with source
info, and this servicer answers file requests for ace/v1 from it, so the API
reference travels with every server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

import ace.v1

DESCRIPTOR_SET = Path(ace.v1.__file__).parent / "ace_v1.binpb"


def _load(path: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    return {f.name: f for f in files}


class DocumentedReflection(reflection.ReflectionServicer):
    def __init__(self, service_names: tuple[str, ...], descriptor_set: Path = DESCRIPTOR_SET) -> None:
        super().__init__(service_names)
        self._files = _load(descriptor_set)

    def _with_dependencies(self, name: str) -> list[bytes]:
        seen: dict[str, bytes] = {}
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            proto = self._files[current]
            seen[current] = proto.SerializeToString()
            pending.extend(proto.dependency)
        return list(seen.values())

    def _documented(self, name: str, request: Any) -> reflection_pb2.ServerReflectionResponse:
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=self._with_dependencies(name)
            ),
            original_request=request,
        )

    # The two hooks below override grpcio-reflection's own (pinned version);
    # everything else, including errors, stays the library's.
    def _file_by_filename(self, request: Any, filename: str) -> reflection_pb2.ServerReflectionResponse:
        if filename in self._files:
            return self._documented(filename, request)
        return super()._file_by_filename(request, filename)

    def _file_containing_symbol(self, request: Any, symbol: str) -> reflection_pb2.ServerReflectionResponse:
        try:
            filename = self._pool.FindFileContainingSymbol(symbol).name
        except KeyError:
            filename = ""
        if filename in self._files:
            return self._documented(filename, request)
        return super()._file_containing_symbol(request, symbol)
