"""`make fuzz`: coverage-guided fuzzing (atheris, libFuzzer) of the code that
takes bytes or values from outside:

- telemetry: TelemetryPoint messages and history CSV files, through
  validation into the feature store and its feature computation;
- model: PublishModel messages and ONNX bytes, through the predictor's
  validation;
- router: RoutingTable bytes through the row parsing a client does
  (services.router.wire) into the rotation, then picks with fuzzed candidate
  names and in-flight counts (the request handling of Decide without gRPC);
- trainer: history segment files as the feature store finds them on disk
  (adopted, read back, sent as ReadHistory sends them) and fuzzed points,
  into the trainer's dataset;
- outcomes: outcome summary segment files as the feature store finds them
  on disk, then IngestOutcomes messages into the same log, read back and
  sent as ReadHistory sends them;
- predict: PredictRequest messages (vectors or a FeatureMatrix with its
  event times) through the predictor's input checks and model into the
  forecasts the learning loop scores.

A crash is any exception other than the project's own refusals (InvalidInput
and friends, ValueError from the CSV reader), and any broken invariant the
targets assert (a choice outside the candidates, a point served from disk
that the store would never have accepted, a row without its label).

python -m tools.fuzz TARGET [--runs N] [--seconds S]
TARGET: model | outcomes | predict | router | telemetry | trainer
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import math
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import atheris
import numpy as np
import structlog
from google.protobuf.message import DecodeError

# Coverage of ACE's own modules guides the fuzzer; they must be imported
# first here, inside the block.
with atheris.instrument_imports(include=["services"]):
    from services.common import features, outcome_summary, telemetry
    from services.common.errors import AceError
    from services.common.points import from_message, to_message
    from services.common.timeutil import to_seconds
    from services.common.window import WindowLimits
    from services.feature_store import history, outcomes
    from services.feature_store.server import point_of
    from services.feature_store.store import Store
    from services.predictor import loop, model, upload
    from services.predictor.scoring import Scorer
    from services.predictor.server import meta_from_proto
    from services.router import wire
    from services.router.policy import Settings
    from services.router.rotation import Rotation
    from services.trainer import dataset

from ace.v1 import feature_store_pb2, predictor_pb2, router_pb2, telemetry_pb2
from tests.predictor import models

MAX_MODEL_BYTES = 1 << 20
_store = Store(WindowLimits(span_s=300.0, max_points=64), max_backends=64)
_scratch = Path(tempfile.mkdtemp(prefix="ace-fuzz-"))
_csv = _scratch / "history.csv"
_onnx = models.onnx_model(seed=0)
_meta = models.make_meta(_onnx, version="fuzz")
_loaded: list[model.LoadedModel] = []  # loaded at the first predict input, not at import
# A small window, so that fuzzed histories fill and slide it.
_limits = WindowLimits(span_s=60.0, max_points=16)


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


def router_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        table = router_pb2.RoutingTable.FromString(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    except DecodeError:
        return
    # As a client takes a table off the watch stream (services.router.client).
    rotation = Rotation(
        Settings(
            threshold_ms=table.threshold_ms,
            horizon_s=table.horizon_s,
            warm_after_s=table.warm_after_s,
            open_penalty=fdp.ConsumeFloat(),
        )
    )
    candidates = [wire.candidate(route) for route in table.backends]
    if table.partial:
        for c in candidates:
            rotation.put(c)
    else:
        rotation.replace_all(candidates)
    known = rotation.backend_ids()
    assert known == sorted({c.backend_id for c in candidates}), "the rotation lost or invented a backend"
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        names: list[str] = []
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            if known and fdp.ConsumeBool():
                names.append(known[fdp.ConsumeIntInRange(0, len(known) - 1)])
            else:
                names.append(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8)))
        # DecideRequest.in_flight is a map<string, uint32>.
        in_flight = (
            {n: fdp.ConsumeIntInRange(0, 2**32 - 1) for n in names if fdp.ConsumeBool()} if fdp.ConsumeBool() else None
        )
        try:
            choice, chosen = rotation.pick(names, in_flight)
        except AceError:  # InvalidInput for bad names, FailedPrecondition for none known
            continue
        pool = names or known
        assert choice.backend_id in pool, f"chose {choice.backend_id!r} outside {pool!r}"
        assert chosen is None or chosen.backend_id == choice.backend_id
        assert choice.backend_id not in choice.fallbacks
        assert set(choice.fallbacks) <= set(pool) and set(choice.skipped) <= set(pool)
        assert len(set(choice.fallbacks)) == len(choice.fallbacks)
        stale = [b for b in known if (kept := rotation.get(b)) is not None and kept.in_flight is not None]
        assert not stale, f"in-flight counts left behind on {stale}"


def _points(fdp: atheris.FuzzedDataProvider) -> list[telemetry.Point]:
    """Points as the trainer's sources give them: few backends, so that each
    has a history, times near each other, so that horizons overlap; only the
    points the store would accept."""
    points = []
    for _ in range(fdp.ConsumeIntInRange(0, 64)):
        point = telemetry.Point(
            fdp.PickValueInList(["a", "b", "c"]),
            1_767_225_600.0 + fdp.ConsumeIntInRange(0, 600) * fdp.PickValueInList([1.0, 0.5, 0.001, 10.0]),
            fdp.ConsumeFloat(),
            fdp.ConsumeFloat(),
            fdp.ConsumeProbability(),
        )
        if telemetry.problem(point) is None:
            points.append(point)
    return points


def trainer_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    # A history directory as a previous run of the feature store left it: an
    # open segment (cut after its last whole record and sealed at start) and
    # a sealed one whose name claims an event-time range.
    directory = _scratch / "history"
    directory.mkdir(exist_ok=True)
    for stale_file in directory.iterdir():  # emptied, not removed: rmdir costs milliseconds on this disk
        stale_file.unlink()
    (directory / f"{1:010d}{history.OPEN_SUFFIX}").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    oldest, newest = sorted(fdp.ConsumeIntInRange(0, 2**62) for _ in range(2))
    (directory / f"{2:010d}-{oldest}-{newest}.seg").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    store = history.History(directory, history.Retention(max_bytes=1 << 20, max_age_s=fdp.ConsumeFloat()))
    try:
        last_s = fdp.PickValueInList([0.0, 60.0, 86_400.0])
        start, end = history.event_range(None, None, last_s, store.newest)
        served = [p for batch in store.read(start, end) for p in batch]
    finally:
        store.close()
    for p in served:
        assert telemetry.problem(p) is None, f"served a point the store never accepts: {p}"
    # What ReadHistory sends and the trainer's history reader gets.
    received = [from_message(to_message(p)) for p in served]

    points = received + _points(fdp)
    horizon_s = fdp.PickValueInList([0.001, 1.0, 30.0, 300.0, math.inf, -1.0])
    try:
        rows = dataset.build(points, horizon_s, _limits)
    except ValueError:
        assert not (math.isfinite(horizon_s) and horizon_s > 0), "a valid horizon was refused"
        return
    distinct = len({(p.backend_id, p.observed_at) for p in points})
    assert len(rows) + rows.unlabelled == distinct, "a point got no row and was not counted unlabelled"
    assert rows.X.shape == (len(rows), features.N_FEATURES) and len(rows.times) == len(rows.backend_ids) == len(rows)
    assert np.isfinite(rows.X).all() and np.isfinite(rows.y).all(), "a non-finite feature or label"
    assert (np.diff(rows.times) >= 0).all(), "rows not in event-time order"


def outcomes_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    # The outcome log as a previous run left it: an open segment (cut after
    # its last whole record and sealed at start) and a sealed one.
    history_dir = _scratch / "outcome-history"
    directory = history_dir / outcomes.SUBDIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    for stale_file in directory.iterdir():
        stale_file.unlink()
    (directory / f"{1:010d}{history.OPEN_SUFFIX}").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    oldest, newest = sorted(fdp.ConsumeIntInRange(0, 2**62) for _ in range(2))
    (directory / f"{2:010d}-{oldest}-{newest}.seg").write_bytes(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512)))
    log = outcomes.OutcomeLog(history_dir, history.Retention(max_bytes=1 << 20, max_age_s=fdp.ConsumeFloat()))
    try:
        # IngestOutcomes requests, as the servicer takes them.
        for _ in range(fdp.ConsumeIntInRange(0, 3)):
            try:
                request = feature_store_pb2.IngestOutcomesRequest.FromString(
                    fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
                )
            except DecodeError:
                continue
            summaries = [outcome_summary.from_message(m) for m in request.summaries]
            result = log.ingest(request.batch_id, summaries)
            expected = 0 if result.duplicate else len(summaries)
            assert result.accepted + len(result.rejected) == expected, "a summary neither stored nor refused"
        start, end = history.event_range(None, None, fdp.PickValueInList([0.0, 60.0, 86_400.0]), log.log.newest)
        served = [s for batch in log.read(start, end) for s in batch]
    finally:
        log.close()
    for s in served:
        assert outcomes.problem(s) is None, f"served a summary the store never accepts: {s}"
        # What ReadHistory sends and the trainer gets back.
        back = outcome_summary.from_message(outcome_summary.to_message(s))
        assert outcomes.problem(back) is None, f"a summary broken on the wire: {s} -> {back}"


def predict_input(data: bytes) -> None:
    try:
        request = predictor_pb2.PredictRequest.FromString(data)
    except DecodeError:
        return
    if not _loaded:
        _loaded.append(model.load_and_validate(_meta, _onnx))
    active = _loaded[0]
    # As the servicer reads a request: a matrix, else the vectors.
    try:
        if request.HasField("matrix"):
            m = request.matrix
            x = active.input_of_matrix(m.schema_version, len(m.backend_ids), m.values)
            backend_ids, as_of = list(m.backend_ids), list(m.as_of_s)
        else:
            x = active.input_of([(v.schema_version, v.values) for v in request.vectors])
            backend_ids = [v.backend_id for v in request.vectors]
            as_of = [to_seconds(v.as_of) for v in request.vectors]
    except AceError:
        return
    assert x.dtype == np.float32 and x.shape == (len(backend_ids), len(_meta.feature_names))
    assert np.isfinite(x).all(), "a non-finite value passed the input checks"
    predicted = active.predict(x)
    assert predicted.shape == (len(backend_ids),) and np.isfinite(predicted).all()
    if len(as_of) != len(backend_ids):
        return  # served, not scored
    # What the learning loop registers: a forecast it cannot score would
    # make the scorer raise and the loop drop the whole call.
    forecasts = loop.forecasts_of(active, backend_ids, as_of, predicted.tolist())
    Scorer().add_forecasts(forecasts)


TARGETS = {
    "telemetry": telemetry_input,
    "model": model_input,
    "outcomes": outcomes_input,
    "predict": predict_input,
    "router": router_input,
    "trainer": trainer_input,
}


def _length_last(n: int) -> bytes:
    """The bytes that make a target's first ConsumeIntInRange(0, 512) return
    n: atheris takes integers from the end of the input, last byte most
    significant, and byte strings from the front."""
    return bytes([n % 256, n // 256])


def seeds(target: str, corpus: Path) -> None:
    """A starting corpus: real messages and a real model, which the fuzzer
    mutates from."""
    corpus.mkdir(parents=True, exist_ok=True)
    if target == "model":
        (corpus / "model").write_bytes(b"\x00" + models.onnx_model(seed=0))
    elif target == "router":
        table = router_pb2.RoutingTable(threshold_ms=300.0, horizon_s=300.0, cold_start_points=5)
        for backend_id, state, risk in (("a", router_pb2.CLOSED, 120.0), ("b", router_pb2.OPEN, 450.0)):
            table.backends.add(
                backend_id=backend_id, state=state, risk_ms=risk, points_in_window=30, basis=router_pb2.FORECAST
            )
        table.backends.add(backend_id="c", state=router_pb2.HALF_OPEN, risk_ms=200.0, points_in_window=30)
        table.backends.add(backend_id="d", cold=True, points_in_window=2)
        raw = table.SerializeToString()
        (corpus / "table").write_bytes(raw + bytes(range(64)) + _length_last(len(raw)))
    elif target == "outcomes":
        records = outcomes.encode(
            [
                outcome_summary.Summary(b, 1_767_225_600.0 + 10 * i, 10.0, 2, 1.5, 3, 300.0, 120.0)
                for i in range(4)
                for b in "ab"
            ]
        )
        request = feature_store_pb2.IngestOutcomesRequest(
            batch_id="r1-1",
            summaries=[outcome_summary.to_message(outcome_summary.Summary("a", 1_767_225_700.0, 10.0, 1, 1.0))],
        ).SerializeToString()
        tail = records + bytes([len(request)]) + request + bytes(range(64))
        (corpus / "segment").write_bytes(tail + _length_last(len(records)))
    elif target == "predict":
        rows = 3
        matrix = predictor_pb2.FeatureMatrix(
            backend_ids=["a", "b", "a"],
            schema_version=_meta.schema_version,
            values=[float(v) for v in range(rows * len(_meta.feature_names))],
            as_of_s=[1_767_225_600.0 + i for i in range(rows)],
        )
        (corpus / "matrix").write_bytes(predictor_pb2.PredictRequest(matrix=matrix).SerializeToString())
        vector = telemetry_pb2.FeatureVector(
            backend_id="a", schema_version=_meta.schema_version, values=[1.0] * len(_meta.feature_names)
        )
        vector.as_of.seconds = 1_767_225_600
        (corpus / "vectors").write_bytes(predictor_pb2.PredictRequest(vectors=[vector]).SerializeToString())
    elif target == "trainer":
        records = history.encode(
            [telemetry.Point(b, 1_767_225_600.0 + 10 * i, 5.0, 50.0 + i, 0.0) for i in range(6) for b in "ab"]
        )
        (corpus / "segment").write_bytes(records + bytes(range(256)) + _length_last(len(records)))
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
    # Every history the trainer target opens logs its opening; a line per
    # input would drown libFuzzer's own output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
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
