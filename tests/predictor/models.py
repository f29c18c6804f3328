"""Small real models for the predictor tests: scikit-learn forests exported
with skl2onnx, with reference outputs computed by onnxruntime itself."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import RandomForestRegressor

from ace.v1 import predictor_pb2
from services.common import features
from services.predictor.model import ModelMeta
from services.predictor.server import meta_to_proto

K = features.N_FEATURES
TRAINED_AT = 1_700_000_000.5


def inputs(rows: int, width: int = K, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 100.0, size=(rows, width)).astype(np.float32)


@functools.cache
def onnx_model(seed: int = 0, width: int = K) -> bytes:
    """A seeded forest of 4 shallow trees; different seeds predict differently."""
    x = inputs(300, width, seed=seed + 1000)
    y = 2.0 * x[:, 0] + x[:, 1] + seed * 10.0
    forest = RandomForestRegressor(n_estimators=4, max_depth=4, random_state=seed).fit(x, y)
    onnx = convert_sklearn(forest, initial_types=[("features", FloatTensorType([None, width]))])
    return bytes(onnx.SerializeToString())


def onnx_double_input() -> bytes:
    """A valid model whose input is float64: sums the features."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["features"], ["narrow"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["narrow", "axes"], ["variable"], keepdims=1),
        ],
        "double_input",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, K])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def run_onnx(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0], dtype=np.float64).reshape(-1)


def make_meta(onnx_bytes: bytes, version: str = "v1", rows: int = 8, **overrides: Any) -> ModelMeta:
    """Metadata that describes `onnx_bytes` truthfully; override to lie."""
    x = inputs(rows, seed=7)
    meta = ModelMeta(
        version=version,
        schema_version=features.SCHEMA_VERSION,
        feature_names=features.FEATURE_NAMES,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size_bytes=len(onnx_bytes),
        horizon_s=30.0,
        trained_at=TRAINED_AT,
        reference_inputs=tuple(float(v) for v in x.reshape(-1)),
        reference_outputs=tuple(float(v) for v in run_onnx(onnx_bytes, x)),
        reference_tolerance_ms=0.01,
        metrics={"mae_ms": 1.5, "r2": 0.9},
        feature_importances={name: 1.0 / K for name in features.FEATURE_NAMES},
        feature_means=tuple(float(i) for i in range(K)),
        feature_stds=tuple(1.0 for _ in range(K)),
    )
    return replace(meta, **overrides)


def claim(meta: ModelMeta, onnx_bytes: bytes) -> ModelMeta:
    """`meta` with the checksum and size of other bytes, so that validation
    gets past them to the model itself."""
    return replace(meta, sha256=hashlib.sha256(onnx_bytes).hexdigest(), size_bytes=len(onnx_bytes))


def metadata_proto(meta: ModelMeta) -> predictor_pb2.ModelMetadata:
    """The full ModelMetadata a trainer sends, reference rows included."""
    m = meta_to_proto(meta)
    m.reference_inputs.extend(meta.reference_inputs)
    m.reference_outputs.extend(meta.reference_outputs)
    return m


def publish_requests(
    meta: ModelMeta, onnx_bytes: bytes, chunk_size: int = 1024
) -> list[predictor_pb2.PublishModelRequest]:
    requests = [predictor_pb2.PublishModelRequest(metadata=metadata_proto(meta))]
    for start in range(0, len(onnx_bytes), chunk_size):
        requests.append(predictor_pb2.PublishModelRequest(chunk=onnx_bytes[start : start + chunk_size]))
    return requests


@functools.cache
def onnx_constant(value_ms: float, width: int = K) -> bytes:
    """A valid model that forecasts `value_ms` whatever its input: the
    deliberately bad version of the learning-loop tests."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["features", "zero"], ["zeros"]),
            helper.make_node("ReduceSum", ["zeros", "axes"], ["summed"], keepdims=1),
            helper.make_node("Add", ["summed", "value"], ["variable"]),
        ],
        "constant",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[
            helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("value", TensorProto.FLOAT, [1], [value_ms]),
        ],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
