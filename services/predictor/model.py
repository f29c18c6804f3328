"""A model version: what the trainer says about it (ModelMeta) and the
onnxruntime session that serves it (LoadedModel). A model only becomes a
LoadedModel through load_and_validate, so every session that can serve has
passed the checks the predictor contract promises."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from services.common import features
from services.common.errors import FailedPrecondition, InvalidInput

VERSION_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_VECTORS = 10_000


@dataclass(frozen=True)
class ModelMeta:
    """ace.v1.ModelMetadata as plain values."""

    version: str
    schema_version: str
    feature_names: tuple[str, ...]
    sha256: str
    size_bytes: int
    horizon_s: float
    trained_at: float  # seconds since the epoch, the trainer's wall clock
    reference_inputs: tuple[float, ...]  # row-major, len(feature_names) per row
    reference_outputs: tuple[float, ...]
    reference_tolerance_ms: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    feature_importances: Mapping[str, float] = field(default_factory=dict)
    feature_means: tuple[float, ...] = ()
    feature_stds: tuple[float, ...] = ()
    stage_only: bool = False
    shadow: bool = False  # publish as the candidate, not active
    # Passed through for operators and the trainer: the ace.v1.HistorySource
    # name ("" when unsaid) and the event time its history spans (0: unsaid).
    history_source: str = ""
    history_start_at: float = 0.0
    history_end_at: float = 0.0


class LoadedModel:
    """A validated version with its warmed-up onnxruntime session. Safe to
    call from many threads at once: InferenceSession.run is thread-safe."""

    def __init__(self, meta: ModelMeta, session: ort.InferenceSession) -> None:
        self.meta = meta
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    @property
    def version(self) -> str:
        return self.meta.version

    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """One prediction per row of an (n, len(feature_names)) matrix."""
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        out = np.asarray(self._session.run([self._output], {self._input: x})[0], dtype=np.float64)
        if out.size != x.shape[0]:
            raise ValueError(f"model output has shape {out.shape}, expected one value per row of {x.shape[0]}")
        return out.reshape(-1)

    def score(self, vectors: Sequence[tuple[str, Sequence[float]]]) -> npt.NDArray[np.float64]:
        """Predicts for (schema_version, values) pairs in one session run.
        Raises FailedPrecondition for a vector of another schema and
        InvalidInput for a vector that is malformed, naming the field."""
        return self.predict(self.input_of(vectors))

    def input_of(self, vectors: Sequence[tuple[str, Sequence[float]]]) -> npt.NDArray[np.float32]:
        """The model input for (schema_version, values) pairs, checked as
        score() checks them; shadow versions of the same schema reuse it."""
        if len(vectors) > MAX_VECTORS:
            raise InvalidInput(f"vectors: at most {MAX_VECTORS} per request, got {len(vectors)}")
        k = len(self.meta.feature_names)
        n = len(vectors)
        # Checked in bulk and copied in one pass: per-row numpy assignments
        # cost more than the model itself on a batch of a thousand.
        if {schema for schema, _ in vectors} - {self.meta.schema_version}:
            i, schema = next((i, s) for i, (s, _) in enumerate(vectors) if s != self.meta.schema_version)
            raise FailedPrecondition(
                f"vectors[{i}].schema_version: active model {self.meta.version} takes "
                f"{self.meta.schema_version!r}, got {schema!r}"
            )
        lengths = [len(values) for _, values in vectors]
        if lengths.count(k) != n:
            i = next(i for i, length in enumerate(lengths) if length != k)
            raise InvalidInput(f"vectors[{i}].values: expected {k} values, got {lengths[i]}")
        x = np.fromiter(itertools.chain.from_iterable([values for _, values in vectors]), np.float64, n * k)
        return _narrow(x.reshape(n, k), lambda i, j: f"vectors[{i}].values[{j}]")

    def score_matrix(self, schema_version: str, rows: int, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predicts for `rows` row-major rows of `values` (FeatureMatrix) in
        one session run, raising as score does, naming matrix fields."""
        return self.predict(self.input_of_matrix(schema_version, rows, values))

    def input_of_matrix(self, schema_version: str, rows: int, values: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The model input for a FeatureMatrix, checked as score_matrix()
        checks it."""
        if rows > MAX_VECTORS:
            raise InvalidInput(f"matrix.backend_ids: at most {MAX_VECTORS} rows per request, got {rows}")
        if schema_version != self.meta.schema_version:
            raise FailedPrecondition(
                f"matrix.schema_version: active model {self.meta.version} takes "
                f"{self.meta.schema_version!r}, got {schema_version!r}"
            )
        k = len(self.meta.feature_names)
        # A protobuf repeated double converts through the array protocol, at
        # memory speed, where the vectors' floats are read one by one.
        x = np.asarray(values, dtype=np.float64)
        if x.shape != (rows * k,):
            raise InvalidInput(f"matrix.values: expected {rows * k} values ({rows} rows of {k} features), got {x.size}")
        return _narrow(x.reshape(rows, k), lambda i, j: f"matrix.values[{i * k + j}] (row {i})")


def _narrow(x: npt.NDArray[np.float64], field: Callable[[int, int], str]) -> npt.NDArray[np.float32]:
    """A float64 matrix as float32 once every value is known to fit;
    InvalidInput names the first that does not, as field(i, j)."""
    # Checking after narrowing also catches finite doubles beyond float32's range.
    with np.errstate(over="ignore"):
        narrow = x.astype(np.float32)
    bad = ~np.isfinite(narrow)
    if bad.any():
        i, j = (int(n) for n in np.argwhere(bad)[0])
        raise InvalidInput(f"{field(i, j)}: must be finite (within float32 range), got {x[i, j]!r}")
    return narrow


def check_version_name(version: str) -> None:
    if not VERSION_NAME.match(version):
        raise InvalidInput(f"version: must be 1 to 64 characters of [A-Za-z0-9._-], got {version!r}")
    # The name becomes a directory; these two would point elsewhere.
    if version in (".", ".."):
        raise InvalidInput(f"version: {version!r} is not allowed")


def check_bytes(meta: ModelMeta, onnx_bytes: bytes) -> None:
    """The bytes are the ones the metadata describes."""
    if len(onnx_bytes) != meta.size_bytes:
        raise InvalidInput(f"size_bytes: metadata says {meta.size_bytes} bytes, received {len(onnx_bytes)}")
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if meta.sha256 != digest:
        raise InvalidInput(f"sha256: metadata says {meta.sha256!r}, the bytes hash to {digest!r}")


def _check_meta(meta: ModelMeta) -> int:
    """Checks the metadata on its own; returns the number of reference rows."""
    check_version_name(meta.version)
    if not meta.schema_version:
        raise InvalidInput("schema_version: must not be empty")
    k = len(meta.feature_names)
    if k == 0:
        raise InvalidInput("feature_names: must not be empty")
    if meta.schema_version == features.SCHEMA_VERSION and meta.feature_names != features.FEATURE_NAMES:
        raise InvalidInput(
            f"feature_names: schema {features.SCHEMA_VERSION} has {list(features.FEATURE_NAMES)}, "
            f"got {list(meta.feature_names)}"
        )
    if len(set(meta.feature_names)) != k:
        raise InvalidInput(f"feature_names: must be unique, got {list(meta.feature_names)}")
    for name, values in (("feature_means", meta.feature_means), ("feature_stds", meta.feature_stds)):
        if values and len(values) != k:
            raise InvalidInput(f"{name}: expected {k} values (one per feature) or none, got {len(values)}")
    if not math.isfinite(meta.reference_tolerance_ms) or meta.reference_tolerance_ms < 0:
        raise InvalidInput(f"reference_tolerance_ms: must be finite and >= 0, got {meta.reference_tolerance_ms!r}")
    if not math.isfinite(meta.horizon_s) or meta.horizon_s < 0:
        raise InvalidInput(f"horizon_s: must be finite and >= 0, got {meta.horizon_s!r}")
    n_inputs = len(meta.reference_inputs)
    if n_inputs == 0:
        raise InvalidInput("reference_inputs: at least one row is required")
    if n_inputs % k:
        raise InvalidInput(f"reference_inputs: {n_inputs} values is not a whole number of rows of {k}")
    rows = n_inputs // k
    if len(meta.reference_outputs) != rows:
        raise InvalidInput(
            f"reference_outputs: expected {rows} values (one per reference row), got {len(meta.reference_outputs)}"
        )
    if not all(math.isfinite(v) for v in meta.reference_inputs):
        raise InvalidInput("reference_inputs: must all be finite")
    return rows


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Two threads, without spinning: onnxruntime's tree ensemble splits only
    # batches of more than 50 rows, so a one-row call stays on one thread
    # (8 us either way), while the router's 1,000-row call takes 1.1 ms
    # instead of 1.8 ms on a 2-core machine. Spinning threads would burn the
    # core that the gRPC threads need between calls.
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # a rejected model is reported through the error, not on stderr
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        # onnxruntime's errors share no base class below Exception.
        raise InvalidInput(f"model: onnxruntime cannot load it: {exc}") from exc


def _check_signature(session: ort.InferenceSession, k: int) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidInput(f"model: must take exactly one input, takes {len(inputs)}")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise InvalidInput(f"model: input {spec.name!r} must be tensor(float), is {spec.type}")
    shape = list(spec.shape)
    # A fixed batch size would break batching; a named or unknown one is dynamic.
    if len(shape) != 2 or isinstance(shape[0], int) or shape[1] != k:
        raise InvalidInput(f"model: input {spec.name!r} must have shape [?, {k}] for {k} features, has {shape}")
    if not session.get_outputs():
        raise InvalidInput("model: has no output")


def load_and_validate(meta: ModelMeta, onnx_bytes: bytes) -> LoadedModel:
    """Loads a version and proves it can serve: the bytes match, the input
    takes the declared features and the reference rows are reproduced.
    Running the references also warms the session up before any swap."""
    rows = _check_meta(meta)
    check_bytes(meta, onnx_bytes)
    k = len(meta.feature_names)
    session = _session(onnx_bytes)
    _check_signature(session, k)
    model = LoadedModel(meta, session)
    x = np.asarray(meta.reference_inputs, dtype=np.float32).reshape(rows, k)
    try:
        got = model.predict(x)
    except Exception as exc:
        raise InvalidInput(f"model: fails on the reference inputs: {exc}") from exc
    if not np.isfinite(got).all():
        raise InvalidInput("model: predicts non-finite values for the reference inputs")
    want = np.asarray(meta.reference_outputs, dtype=np.float64)
    off = np.abs(got - want)
    worst = int(np.argmax(off))
    # `not <=` so that a NaN reference output counts as a mismatch too.
    if not off[worst] <= meta.reference_tolerance_ms:
        raise InvalidInput(
            f"reference_outputs[{worst}]: model predicts {got[worst]!r}, metadata says {want[worst]!r} "
            f"(tolerance {meta.reference_tolerance_ms} ms)"
        )
    return model
