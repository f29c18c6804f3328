from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.errors import AlreadyExists, InvalidInput
from services.predictor import upload
from services.predictor.registry import Registry
from tests.predictor import models


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_assembles_chunks(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a)
    got_meta, got_bytes = upload.receive([meta, *chunks(onnx_a, 1000)], max_model_bytes=1 << 20)
    assert got_meta == meta
    assert got_bytes == onnx_a


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([], "metadata: missing"),
        ([b"abc"], "chunk before metadata"),
        (["meta", "meta"], "metadata: sent twice"),
        (["meta", b"x" * 11], "chunk: the stream carries more than size_bytes=10 bytes"),
    ],
)
def test_malformed_streams(onnx_a: bytes, parts: list[object], reason: str) -> None:
    meta = models.make_meta(onnx_a, size_bytes=10)
    stream = [meta if p == "meta" else p for p in parts]
    with pytest.raises(InvalidInput, match="^" + re.escape(reason)):
        upload.receive(stream, max_model_bytes=1 << 20)  # type: ignore[arg-type]


def test_stops_reading_at_the_first_excess_byte(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a, size_bytes=10)
    read = 0

    def endless() -> Iterator[upload.Part]:
        nonlocal read
        yield meta
        while True:
            read += 1
            yield b"x" * 4

    with pytest.raises(InvalidInput, match=r"^chunk: the stream carries more than size_bytes=10"):
        upload.receive(endless(), max_model_bytes=1 << 20)
    assert read == 3


def test_size_beyond_limit_refused_before_any_chunk(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a)

    def stream() -> Iterator[upload.Part]:
        yield meta
        raise AssertionError("read past the metadata")

    with pytest.raises(InvalidInput, match=f"^size_bytes: {len(onnx_a)} exceeds this predictor's limit of 100 bytes"):
        upload.receive(stream(), max_model_bytes=100)


def test_publish_refuses_stored_version_at_metadata(tmp_path: Path, onnx_a: bytes) -> None:
    reg = Registry(tmp_path)
    meta = models.make_meta(onnx_a)
    assert upload.publish([meta, onnx_a], reg, max_model_bytes=1 << 20).active

    def stream() -> Iterator[upload.Part]:
        yield meta
        raise AssertionError("read past the metadata")

    with pytest.raises(AlreadyExists, match=r"^version: 'v1' is already stored"):
        upload.publish(stream(), reg, max_model_bytes=1 << 20)
