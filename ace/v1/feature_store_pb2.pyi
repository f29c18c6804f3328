import datetime

from ace.v1 import telemetry_pb2 as _telemetry_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestRequest(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.TelemetryPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[_telemetry_pb2.TelemetryPoint, _Mapping]]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("index", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class GetFeaturesRequest(_message.Message):
    __slots__ = ("backend_ids",)
    BACKEND_IDS_FIELD_NUMBER: _ClassVar[int]
    backend_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, backend_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetFeaturesResponse(_message.Message):
    __slots__ = ("feature_names", "schema_version", "vectors")
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    schema_version: str
    vectors: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.FeatureVector]
    def __init__(self, feature_names: _Optional[_Iterable[str]] = ..., schema_version: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[_telemetry_pb2.FeatureVector, _Mapping]]] = ...) -> None: ...

class WatchFeaturesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadHistoryRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "last_s", "backend_ids", "include_outcomes", "skip_points")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_S_FIELD_NUMBER: _ClassVar[int]
    BACKEND_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    SKIP_POINTS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    last_s: float
    backend_ids: _containers.RepeatedScalarFieldContainer[str]
    include_outcomes: bool
    skip_points: bool
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_s: _Optional[float] = ..., backend_ids: _Optional[_Iterable[str]] = ..., include_outcomes: _Optional[bool] = ..., skip_points: _Optional[bool] = ...) -> None: ...

class HistoryBatch(_message.Message):
    __slots__ = ("points", "outcomes")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_telemetry_pb2.TelemetryPoint]
    outcomes: _containers.RepeatedCompositeFieldContainer[OutcomeSummary]
    def __init__(self, points: _Optional[_Iterable[_Union[_telemetry_pb2.TelemetryPoint, _Mapping]]] = ..., outcomes: _Optional[_Iterable[_Union[OutcomeSummary, _Mapping]]] = ...) -> None: ...

class OutcomeSummary(_message.Message):
    __slots__ = ("backend_id", "bucket_start", "bucket_s", "quality_count", "quality_sum", "latency_count", "latency_sum_ms", "latency_max_ms")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_START_FIELD_NUMBER: _ClassVar[int]
    BUCKET_S_FIELD_NUMBER: _ClassVar[int]
    QUALITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SUM_FIELD_NUMBER: _ClassVar[int]
    LATENCY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SUM_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    bucket_start: _timestamp_pb2.Timestamp
    bucket_s: float
    quality_count: int
    quality_sum: float
    latency_count: int
    latency_sum_ms: float
    latency_max_ms: float
    def __init__(self, backend_id: _Optional[str] = ..., bucket_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_s: _Optional[float] = ..., quality_count: _Optional[int] = ..., quality_sum: _Optional[float] = ..., latency_count: _Optional[int] = ..., latency_sum_ms: _Optional[float] = ..., latency_max_ms: _Optional[float] = ...) -> None: ...

class IngestOutcomesRequest(_message.Message):
    __slots__ = ("batch_id", "summaries")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    summaries: _containers.RepeatedCompositeFieldContainer[OutcomeSummary]
    def __init__(self, batch_id: _Optional[str] = ..., summaries: _Optional[_Iterable[_Union[OutcomeSummary, _Mapping]]] = ...) -> None: ...

class IngestOutcomesResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "duplicate")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    duplicate: bool
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ..., duplicate: _Optional[bool] = ...) -> None: ...
