import datetime

from ace.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HistorySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HISTORY_SOURCE_UNSPECIFIED: _ClassVar[HistorySource]
    HISTORY_SOURCE_SYNTHETIC: _ClassVar[HistorySource]
    HISTORY_SOURCE_CSV: _ClassVar[HistorySource]
    HISTORY_SOURCE_FLEET: _ClassVar[HistorySource]

class ModelRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ROLE_UNSPECIFIED: _ClassVar[ModelRole]
    ACTIVE: _ClassVar[ModelRole]
    CANDIDATE: _ClassVar[ModelRole]
    PREVIOUS: _ClassVar[ModelRole]

class GateVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GATE_VERDICT_UNSPECIFIED: _ClassVar[GateVerdict]
    WAIT: _ClassVar[GateVerdict]
    PROMOTE: _ClassVar[GateVerdict]
    REFUSE: _ClassVar[GateVerdict]
    ROLL_BACK: _ClassVar[GateVerdict]
    KEEP: _ClassVar[GateVerdict]
HISTORY_SOURCE_UNSPECIFIED: HistorySource
HISTORY_SOURCE_SYNTHETIC: HistorySource
HISTORY_SOURCE_CSV: HistorySource
HISTORY_SOURCE_FLEET: HistorySource
MODEL_ROLE_UNSPECIFIED: ModelRole
ACTIVE: ModelRole
CANDIDATE: ModelRole
PREVIOUS: ModelRole
GATE_VERDICT_UNSPECIFIED: GateVerdict
WAIT: GateVerdict
PROMOTE: GateVerdict
REFUSE: GateVerdict
ROLL_BACK: GateVerdict
KEEP: GateVerdict

class PredictRequest(_message.Message):
    __slots__ = ("vectors", "matrix")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.FeatureVector]
    matrix: FeatureMatrix
    def __init__(self, vectors: _Optional[_Iterable[_Union[_telemetry_pb2.FeatureVector, _Mapping]]] = ..., matrix: _Optional[_Union[FeatureMatrix, _Mapping]] = ...) -> None: ...

class FeatureMatrix(_message.Message):
    __slots__ = ("backend_ids", "schema_version", "values", "as_of_s")
    BACKEND_IDS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_S_FIELD_NUMBER: _ClassVar[int]
    backend_ids: _containers.RepeatedScalarFieldContainer[str]
    schema_version: str
    values: _containers.RepeatedScalarFieldContainer[float]
    as_of_s: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, backend_ids: _Optional[_Iterable[str]] = ..., schema_version: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., as_of_s: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model_version", "predictions", "predicted_latency_ms", "model_proven", "trust_reason", "forecast_scale")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROVEN_FIELD_NUMBER: _ClassVar[int]
    TRUST_REASON_FIELD_NUMBER: _ClassVar[int]
    FORECAST_SCALE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    predicted_latency_ms: _containers.RepeatedScalarFieldContainer[float]
    model_proven: bool
    trust_reason: str
    forecast_scale: float
    def __init__(self, model_version: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., predicted_latency_ms: _Optional[_Iterable[float]] = ..., model_proven: _Optional[bool] = ..., trust_reason: _Optional[str] = ..., forecast_scale: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("backend_id", "predicted_latency_ms")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    predicted_latency_ms: float
    def __init__(self, backend_id: _Optional[str] = ..., predicted_latency_ms: _Optional[float] = ...) -> None: ...

class ModelMetadata(_message.Message):
    __slots__ = ("version", "schema_version", "feature_names", "sha256", "size_bytes", "reference_inputs", "reference_outputs", "reference_tolerance_ms", "horizon_s", "trained_at", "metrics", "feature_importances", "feature_means", "feature_stds", "stage_only", "shadow", "history_source", "history_start_at", "history_end_at")
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
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_START_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_END_AT_FIELD_NUMBER: _ClassVar[int]
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
    shadow: bool
    history_source: HistorySource
    history_start_at: _timestamp_pb2.Timestamp
    history_end_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., schema_version: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., reference_inputs: _Optional[_Iterable[float]] = ..., reference_outputs: _Optional[_Iterable[float]] = ..., reference_tolerance_ms: _Optional[float] = ..., horizon_s: _Optional[float] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., feature_importances: _Optional[_Mapping[str, float]] = ..., feature_means: _Optional[_Iterable[float]] = ..., feature_stds: _Optional[_Iterable[float]] = ..., stage_only: _Optional[bool] = ..., shadow: _Optional[bool] = ..., history_source: _Optional[_Union[HistorySource, str]] = ..., history_start_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history_end_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublishModelRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("metadata", "published_at", "active", "role")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    metadata: ModelMetadata
    published_at: _timestamp_pb2.Timestamp
    active: bool
    role: ModelRole
    def __init__(self, metadata: _Optional[_Union[ModelMetadata, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., role: _Optional[_Union[ModelRole, str]] = ...) -> None: ...

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

class GetModelHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelHealth(_message.Message):
    __slots__ = ("window_s", "breach_threshold_ms", "versions", "error_drift", "feature_drift", "last_gate", "pending_forecasts", "unlabelled_forecasts", "truth_approximate", "dropped_shadow_batches", "enabled", "newest_point_at")
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    BREACH_THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_DRIFT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DRIFT_FIELD_NUMBER: _ClassVar[int]
    LAST_GATE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FORECASTS_FIELD_NUMBER: _ClassVar[int]
    UNLABELLED_FORECASTS_FIELD_NUMBER: _ClassVar[int]
    TRUTH_APPROXIMATE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SHADOW_BATCHES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NEWEST_POINT_AT_FIELD_NUMBER: _ClassVar[int]
    window_s: float
    breach_threshold_ms: float
    versions: _containers.RepeatedCompositeFieldContainer[VersionHealth]
    error_drift: DriftStatus
    feature_drift: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    last_gate: GateOutcome
    pending_forecasts: int
    unlabelled_forecasts: int
    truth_approximate: bool
    dropped_shadow_batches: int
    enabled: bool
    newest_point_at: _timestamp_pb2.Timestamp
    def __init__(self, window_s: _Optional[float] = ..., breach_threshold_ms: _Optional[float] = ..., versions: _Optional[_Iterable[_Union[VersionHealth, _Mapping]]] = ..., error_drift: _Optional[_Union[DriftStatus, _Mapping]] = ..., feature_drift: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., last_gate: _Optional[_Union[GateOutcome, _Mapping]] = ..., pending_forecasts: _Optional[int] = ..., unlabelled_forecasts: _Optional[int] = ..., truth_approximate: _Optional[bool] = ..., dropped_shadow_batches: _Optional[int] = ..., enabled: _Optional[bool] = ..., newest_point_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VersionHealth(_message.Message):
    __slots__ = ("version", "role", "labels", "mae_ms", "log_mae", "breach_precision", "breach_recall", "predicted_breaches", "actual_breaches", "horizon_s", "proven", "trust_reason", "forecast_scale")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAE_MS_FIELD_NUMBER: _ClassVar[int]
    LOG_MAE_FIELD_NUMBER: _ClassVar[int]
    BREACH_PRECISION_FIELD_NUMBER: _ClassVar[int]
    BREACH_RECALL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_BREACHES_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_BREACHES_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    PROVEN_FIELD_NUMBER: _ClassVar[int]
    TRUST_REASON_FIELD_NUMBER: _ClassVar[int]
    FORECAST_SCALE_FIELD_NUMBER: _ClassVar[int]
    version: str
    role: ModelRole
    labels: int
    mae_ms: float
    log_mae: float
    breach_precision: float
    breach_recall: float
    predicted_breaches: int
    actual_breaches: int
    horizon_s: float
    proven: bool
    trust_reason: str
    forecast_scale: float
    def __init__(self, version: _Optional[str] = ..., role: _Optional[_Union[ModelRole, str]] = ..., labels: _Optional[int] = ..., mae_ms: _Optional[float] = ..., log_mae: _Optional[float] = ..., breach_precision: _Optional[float] = ..., breach_recall: _Optional[float] = ..., predicted_breaches: _Optional[int] = ..., actual_breaches: _Optional[int] = ..., horizon_s: _Optional[float] = ..., proven: _Optional[bool] = ..., trust_reason: _Optional[str] = ..., forecast_scale: _Optional[float] = ...) -> None: ...

class DriftStatus(_message.Message):
    __slots__ = ("samples", "mean", "statistic", "threshold", "fires", "last_fired_at")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FIRES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    samples: int
    mean: float
    statistic: float
    threshold: float
    fires: int
    last_fired_at: _timestamp_pb2.Timestamp
    def __init__(self, samples: _Optional[int] = ..., mean: _Optional[float] = ..., statistic: _Optional[float] = ..., threshold: _Optional[float] = ..., fires: _Optional[int] = ..., last_fired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("feature", "status")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    status: DriftStatus
    def __init__(self, feature: _Optional[str] = ..., status: _Optional[_Union[DriftStatus, _Mapping]] = ...) -> None: ...

class GateOutcome(_message.Message):
    __slots__ = ("verdict", "reason", "labels", "subject_version", "reference_version", "subject_error", "reference_error", "limit", "decided_at")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ERROR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    verdict: GateVerdict
    reason: str
    labels: int
    subject_version: str
    reference_version: str
    subject_error: float
    reference_error: float
    limit: float
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, verdict: _Optional[_Union[GateVerdict, str]] = ..., reason: _Optional[str] = ..., labels: _Optional[int] = ..., subject_version: _Optional[str] = ..., reference_version: _Optional[str] = ..., subject_error: _Optional[float] = ..., reference_error: _Optional[float] = ..., limit: _Optional[float] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
