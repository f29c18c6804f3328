import datetime

from ace.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("vectors", "matrix")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.FeatureVector]
    matrix: FeatureMatrix
    def __init__(self, vectors: _Optional[_Iterable[_Union[_telemetry_pb2.FeatureVector, _Mapping]]] = ..., matrix: _Optional[_Union[FeatureMatrix, _Mapping]] = ...) -> None: ...

class FeatureMatrix(_message.Message):
    __slots__ = ("backend_ids", "schema_version", "values")
    BACKEND_IDS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    backend_ids: _containers.RepeatedScalarFieldContainer[str]
    schema_version: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, backend_ids: _Optional[_Iterable[str]] = ..., schema_version: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model_version", "predictions", "predicted_latency_ms")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    predicted_latency_ms: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model_version: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., predicted_latency_ms: _Optional[_Iterable[float]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("backend_id", "predicted_latency_ms")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    predicted_latency_ms: float
    def __init__(self, backend_id: _Optional[str] = ..., predicted_latency_ms: _Optional[float] = ...) -> None: ...

class ModelMetadata(_message.Message):
    __slots__ = ("version", "schema_version", "feature_names", "sha256", "size_bytes", "reference_inputs", "reference_outputs", "reference_tolerance_ms", "horizon_s", "trained_at", "metrics", "feature_importances", "feature_means", "feature_stds", "stage_only")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FeatureImportancesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_INPUTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TOLERANCE_MS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_IMPORTANCES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MEANS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_STDS_FIELD_NUMBER: _ClassVar[int]
    STAGE_ONLY_FIELD_NUMBER: _ClassVar[int]
    version: str
    schema_version: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    sha256: str
    size_bytes: int
    reference_inputs: _containers.RepeatedScalarFieldContainer[float]
    reference_outputs: _containers.RepeatedScalarFieldContainer[float]
    reference_tolerance_ms: float
    horizon_s: float
    trained_at: _timestamp_pb2.Timestamp
    metrics: _containers.ScalarMap[str, float]
    feature_importances: _containers.ScalarMap[str, float]
    feature_means: _containers.RepeatedScalarFieldContainer[float]
    feature_stds: _containers.RepeatedScalarFieldContainer[float]
    stage_only: bool
    def __init__(self, version: _Optional[str] = ..., schema_version: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., reference_inputs: _Optional[_Iterable[float]] = ..., reference_outputs: _Optional[_Iterable[float]] = ..., reference_tolerance_ms: _Optional[float] = ..., horizon_s: _Optional[float] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., feature_importances: _Optional[_Mapping[str, float]] = ..., feature_means: _Optional[_Iterable[float]] = ..., feature_stds: _Optional[_Iterable[float]] = ..., stage_only: _Optional[bool] = ...) -> None: ...

class PublishModelRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("metadata", "published_at", "active")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    published_at: _timestamp_pb2.Timestamp
    active: bool
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ...) -> None: ...

class GetActiveModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("to_version",)
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    to_version: str
    def __init__(self, to_version: _Optional[str] = ...) -> None: ...
