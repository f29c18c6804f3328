"""`make fuzz`: coverage-guided fuzzing (atheris, libFuzzer) of the two
parsers that take bytes from outside: telemetry (TelemetryPoint messages and
history CSV files, through validation into the feature store and its feature
computation) and models (PublishModel messages and ONNX bytes, through the
predictor's validation). A crash is any exception other than the project's
own refusals (InvalidInput and friends, ValueError from the CSV reader).

python -m tools.fuzz TARGET [--runs N] [--seconds S]   TARGET: telemetry | model
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import atheris
from google.protobuf.message import DecodeError

# Coverage of ACE's own modules guides the fuzzer; they must be imported
# first here, inside the block.
with atheris.instrument_imports(include=["services"]):
    from services.common import telemetry
    from services.common.errors import AceError
    from services.common.window import WindowLimits
    from services.feature_store.server import point_of
    from services.feature_store.store import Store
    from services.predictor import model, upload
    from services.predictor.server import meta_from_proto

from ace.v1 import predictor_pb2, telemetry_pb2
from tests.predictor import models

MAX_MODEL_BYTES = 1 << 20
_store = Store(WindowLimits(span_s=300.0, max_points=64), max_backends=64)
_csv = Path(tempfile.mkdtemp(prefix="ace-fuzz-")) / "history.csv"
_meta = models.make_meta(models.onnx_model(seed=0), version="fuzz")


def telemetry_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    points = []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        try:
            points.append(
                point_of(telemetry_pb2.TelemetryPoint.FromString(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))))
            )
        except DecodeError:
            continue
    _store.ingest(points)
    _store.vectors()
    _csv.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    try:
        for _ in telemetry.read_csv(_csv):
            pass
    except (ValueError, UnicodeDecodeError):
        pass  # the reader's refusal, naming the line


def model_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        # A PublishModel stream as the servicer parses it.
        parts: list[upload.Part] = []
        for _ in range(fdp.ConsumeIntInRange(0, 3)):
            request = predictor_pb2.PublishModelRequest.FromString(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)))
            kind = request.WhichOneof("part")
            if kind is not None:
                parts.append(meta_from_proto(request.metadata) if kind == "metadata" else request.chunk)
        upload.receive(parts, MAX_MODEL_BYTES)
    except (DecodeError, AceError):
        pass
    # ONNX bytes whose checksum and size are right, so that onnxruntime
    # parses and runs them.
    onnx = fdp.ConsumeBytes(fdp.remaining_bytes())
    meta = replace(_meta, sha256=hashlib.sha256(onnx).hexdigest(), size_bytes=len(onnx))
    with contextlib.suppress(AceError):
        model.load_and_validate(meta, onnx)


TARGETS = {"telemetry": telemetry_input, "model": model_input}


def seeds(target: str, corpus: Path) -> None:
    """A starting corpus: real messages and a real model, which the fuzzer
    mutates from."""
    corpus.mkdir(parents=True, exist_ok=True)
    if target == "model":
        (corpus / "model").write_bytes(b"\x00" + models.onnx_model(seed=0))
    else:
        point = telemetry_pb2.TelemetryPoint(backend_id="a", load=1.0, latency_ms=50.0, error_rate=0.01)
        point.observed_at.seconds = 1_767_225_600
        raw = point.SerializeToString()
        header = ",".join(telemetry.CSV_HEADER)
        (corpus / "points").write_bytes(bytes([len(raw)]) + raw + f"{header}\na,1767225600,1,50,0.01\n".encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--runs", type=int, default=20_000, help="inputs to try")
    parser.add_argument("--seconds", type=int, default=120, help="stop after this long at most")
    parser.add_argument("--corpus", type=Path, default=Path(".run/fuzz"), help="where the corpus grows")
    args = parser.parse_args(argv)
    corpus = args.corpus / args.target
    seeds(args.target, corpus)
    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-max_total_time={args.seconds}",
        "-rss_limit_mb=4096",
        "-timeout=10",  # seconds one input may take: a slower one is a finding
        f"-artifact_prefix={args.corpus}/crash-{args.target}-",
        str(corpus),
    ]
    atheris.Setup(libfuzzer, TARGETS[args.target])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
