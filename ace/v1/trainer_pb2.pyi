import datetime

from ace.v1 import predictor_pb2 as _predictor_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAIN_STAGE_UNSPECIFIED: _ClassVar[TrainStage]
    HISTORY: _ClassVar[TrainStage]
    FEATURES: _ClassVar[TrainStage]
    FIT: _ClassVar[TrainStage]
    EXPORT: _ClassVar[TrainStage]
    VERIFY: _ClassVar[TrainStage]
    PUBLISH: _ClassVar[TrainStage]
    DONE: _ClassVar[TrainStage]

class TrainTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAIN_TRIGGER_UNSPECIFIED: _ClassVar[TrainTrigger]
    OPERATOR: _ClassVar[TrainTrigger]
    FLEET_FIRST: _ClassVar[TrainTrigger]
    FLEET_REFRESH: _ClassVar[TrainTrigger]
    DRIFT: _ClassVar[TrainTrigger]
TRAIN_STAGE_UNSPECIFIED: TrainStage
HISTORY: TrainStage
FEATURES: TrainStage
FIT: TrainStage
EXPORT: TrainStage
VERIFY: TrainStage
PUBLISH: TrainStage
DONE: TrainStage
TRAIN_TRIGGER_UNSPECIFIED: TrainTrigger
OPERATOR: TrainTrigger
FLEET_FIRST: TrainTrigger
FLEET_REFRESH: TrainTrigger
DRIFT: TrainTrigger

class TrainRequest(_message.Message):
    __slots__ = ("synthetic", "csv_path", "feature_store", "publish", "n_estimators", "max_depth", "horizon_s", "threshold_ms", "seed")
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    CSV_PATH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_STORE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    N_ESTIMATORS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    synthetic: SyntheticSource
    csv_path: str
    feature_store: FeatureStoreSource
    publish: bool
    n_estimators: int
    max_depth: int
    horizon_s: float
    threshold_ms: float
    seed: int
    def __init__(self, synthetic: _Optional[_Union[SyntheticSource, _Mapping]] = ..., csv_path: _Optional[str] = ..., feature_store: _Optional[_Union[FeatureStoreSource, _Mapping]] = ..., publish: _Optional[bool] = ..., n_estimators: _Optional[int] = ..., max_depth: _Optional[int] = ..., horizon_s: _Optional[float] = ..., threshold_ms: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class SyntheticSource(_message.Message):
    __slots__ = ("seed", "backends", "duration_s", "interval_s")
    SEED_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    seed: int
    backends: int
    duration_s: float
    interval_s: float
    def __init__(self, seed: _Optional[int] = ..., backends: _Optional[int] = ..., duration_s: _Optional[float] = ..., interval_s: _Optional[float] = ...) -> None: ...

class FeatureStoreSource(_message.Message):
    __slots__ = ("duration_s",)
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    def __init__(self, duration_s: _Optional[float] = ...) -> None: ...

class TrainProgress(_message.Message):
    __slots__ = ("stage", "message", "result")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    stage: TrainStage
    message: str
    result: TrainResult
    def __init__(self, stage: _Optional[_Union[TrainStage, str]] = ..., message: _Optional[str] = ..., result: _Optional[_Union[TrainResult, _Mapping]] = ...) -> None: ...

class TrainResult(_message.Message):
    __slots__ = ("version", "metrics", "published", "publish_error", "replicas", "trigger", "history_start_at", "history_end_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_START_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_END_AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    metrics: TrainMetrics
    published: bool
    publish_error: str
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaPublish]
    trigger: TrainTrigger
    history_start_at: _timestamp_pb2.Timestamp
    history_end_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., metrics: _Optional[_Union[TrainMetrics, _Mapping]] = ..., published: _Optional[bool] = ..., publish_error: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[ReplicaPublish, _Mapping]]] = ..., trigger: _Optional[_Union[TrainTrigger, str]] = ..., history_start_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history_end_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReplicaPublish(_message.Message):
    __slots__ = ("address", "published", "error")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    address: str
    published: bool
    error: str
    def __init__(self, address: _Optional[str] = ..., published: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TrainMetrics(_message.Message):
    __slots__ = ("train_rows", "test_rows", "mae_ms", "r2", "breach_precision", "breach_recall", "persistence_mae_ms", "onnx_max_abs_diff_ms", "threshold_ms", "horizon_s")
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    TEST_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAE_MS_FIELD_NUMBER: _ClassVar[int]
    R2_FIELD_NUMBER: _ClassVar[int]
    BREACH_PRECISION_FIELD_NUMBER: _ClassVar[int]
    BREACH_RECALL_FIELD_NUMBER: _ClassVar[int]
    PERSISTENCE_MAE_MS_FIELD_NUMBER: _ClassVar[int]
    ONNX_MAX_ABS_DIFF_MS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    train_rows: int
    test_rows: int
    mae_ms: float
    r2: float
    breach_precision: float
    breach_recall: float
    persistence_mae_ms: float
    onnx_max_abs_diff_ms: float
    threshold_ms: float
    horizon_s: float
    def __init__(self, train_rows: _Optional[int] = ..., test_rows: _Optional[int] = ..., mae_ms: _Optional[float] = ..., r2: _Optional[float] = ..., breach_precision: _Optional[float] = ..., breach_recall: _Optional[float] = ..., persistence_mae_ms: _Optional[float] = ..., onnx_max_abs_diff_ms: _Optional[float] = ..., threshold_ms: _Optional[float] = ..., horizon_s: _Optional[float] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrainerStatus(_message.Message):
    __slots__ = ("training", "last_result", "last_finished_at", "retrain")
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    LAST_RESULT_FIELD_NUMBER: _ClassVar[int]
    LAST_FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    RETRAIN_FIELD_NUMBER: _ClassVar[int]
    training: bool
    last_result: TrainResult
    last_finished_at: _timestamp_pb2.Timestamp
    retrain: RetrainStatus
    def __init__(self, training: _Optional[bool] = ..., last_result: _Optional[_Union[TrainResult, _Mapping]] = ..., last_finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retrain: _Optional[_Union[RetrainStatus, _Mapping]] = ...) -> None: ...

class RetrainStatus(_message.Message):
    __slots__ = ("auto_train", "on_drift", "waiting_for", "next_due_at", "started", "active_history_source")
    AUTO_TRAIN_FIELD_NUMBER: _ClassVar[int]
    ON_DRIFT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_HISTORY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    auto_train: bool
    on_drift: bool
    waiting_for: str
    next_due_at: _timestamp_pb2.Timestamp
    started: int
    active_history_source: _predictor_pb2.HistorySource
    def __init__(self, auto_train: _Optional[bool] = ..., on_drift: _Optional[bool] = ..., waiting_for: _Optional[str] = ..., next_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started: _Optional[int] = ..., active_history_source: _Optional[_Union[_predictor_pb2.HistorySource, str]] = ...) -> None: ...
