from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from services.common import features
from services.common.errors import FailedPrecondition, InvalidInput
from services.predictor.model import MAX_VECTORS, load_and_validate
from tests.predictor import models


def test_valid_model_reproduces_onnxruntime(onnx_a: bytes) -> None:
    model = load_and_validate(models.make_meta(onnx_a), onnx_a)
    x = models.inputs(5, seed=3)
    got = model.predict(x)
    assert got.dtype == np.float64
    assert got.shape == (5,)
    np.testing.assert_array_equal(got, models.run_onnx(onnx_a, x))


def test_predict_no_rows(onnx_a: bytes) -> None:
    model = load_and_validate(models.make_meta(onnx_a), onnx_a)
    assert model.predict(np.empty((0, models.K), dtype=np.float32)).shape == (0,)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"version": "bad name"}, "version: must be 1 to 64 characters"),
        ({"version": "x" * 65}, "version: must be 1 to 64 characters"),
        ({"version": ".."}, "version: '..' is not allowed"),
        ({"size_bytes": 12}, "size_bytes: metadata says 12 bytes"),
        ({"sha256": "0" * 64}, "sha256: metadata says"),
        ({"schema_version": ""}, "schema_version: must not be empty"),
        ({"feature_names": tuple(reversed(features.FEATURE_NAMES))}, "feature_names: schema ace.features.v1 has"),
        ({"feature_means": (1.0, 2.0)}, "feature_means: expected 11 values"),
        ({"reference_inputs": (), "reference_outputs": ()}, "reference_inputs: at least one row is required"),
        ({"reference_inputs": (1.0,) * 12}, "reference_inputs: 12 values is not a whole number of rows of 11"),
        ({"reference_outputs": (1.0,)}, "reference_outputs: expected 8 values"),
        ({"reference_tolerance_ms": math.nan}, "reference_tolerance_ms: must be finite"),
    ],
)
def test_metadata_rejected(onnx_a: bytes, overrides: dict[str, Any], reason: str) -> None:
    meta = models.make_meta(onnx_a, **overrides)
    with pytest.raises(InvalidInput, match="^" + re.escape(reason)):
        load_and_validate(meta, onnx_a)


def test_garbage_bytes_rejected(onnx_a: bytes) -> None:
    garbage = b"this is not an onnx model" * 10
    with pytest.raises(InvalidInput, match=r"^model: onnxruntime cannot load it"):
        load_and_validate(models.claim(models.make_meta(onnx_a), garbage), garbage)


def test_wrong_input_width_rejected(onnx_a: bytes) -> None:
    narrow = models.onnx_model(width=5)
    with pytest.raises(InvalidInput, match=r"^model: input 'features' must have shape \[\?, 11\] for 11 features"):
        load_and_validate(models.claim(models.make_meta(onnx_a), narrow), narrow)


def test_double_input_rejected(onnx_a: bytes) -> None:
    double = models.onnx_double_input()
    with pytest.raises(InvalidInput, match=r"^model: input 'features' must be tensor\(float\)"):
        load_and_validate(models.claim(models.make_meta(onnx_a), double), double)


def test_reference_mismatch_rejected(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a)
    shifted = (meta.reference_outputs[0], *(v + 1.0 for v in meta.reference_outputs[1:]))
    with pytest.raises(InvalidInput, match=r"^reference_outputs\[1\]: model predicts .* \(tolerance 0\.01 ms\)"):
        load_and_validate(replace(meta, reference_outputs=shifted), onnx_a)


def test_reference_within_tolerance_accepted(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a, reference_tolerance_ms=0.5)
    nudged = tuple(v + 0.4 for v in meta.reference_outputs)
    load_and_validate(replace(meta, reference_outputs=nudged), onnx_a)


def test_other_schema_skips_name_check(onnx_a: bytes) -> None:
    names = tuple(f"f{i}" for i in range(models.K))
    model = load_and_validate(models.make_meta(onnx_a, schema_version="custom.v9", feature_names=names), onnx_a)
    assert model.meta.schema_version == "custom.v9"


def test_score_batches_and_checks_vectors(onnx_a: bytes) -> None:
    model = load_and_validate(models.make_meta(onnx_a), onnx_a)
    x = models.inputs(3, seed=4)
    vectors = [(features.SCHEMA_VERSION, [float(v) for v in row]) for row in x]
    np.testing.assert_array_equal(model.score(vectors), models.run_onnx(onnx_a, x))
    assert model.score([]).shape == (0,)

    with pytest.raises(FailedPrecondition, match=r"^vectors\[1\]\.schema_version: .* 'ace\.features\.v1', got 'v0'"):
        model.score([vectors[0], ("v0", vectors[1][1])])
    with pytest.raises(InvalidInput, match=r"^vectors\[2\]\.values: expected 11 values, got 2"):
        model.score([vectors[0], vectors[1], (features.SCHEMA_VERSION, [1.0, 2.0])])
    with pytest.raises(InvalidInput, match=r"^vectors\[0\]\.values\[4\]: must be finite"):
        model.score([(features.SCHEMA_VERSION, [1.0] * 4 + [math.inf] + [1.0] * 6)])
    with pytest.raises(InvalidInput, match=r"^vectors\[0\]\.values\[0\]: must be finite"):
        model.score([(features.SCHEMA_VERSION, [1e300] + [1.0] * 10)])
    with pytest.raises(InvalidInput, match=rf"^vectors: at most {MAX_VECTORS} per request, got {MAX_VECTORS + 1}"):
        model.score([vectors[0]] * (MAX_VECTORS + 1))
