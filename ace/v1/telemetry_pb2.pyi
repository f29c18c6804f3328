import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TelemetryPoint(_message.Message):
    __slots__ = ("backend_id", "observed_at", "load", "latency_ms", "error_rate")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    observed_at: _timestamp_pb2.Timestamp
    load: float
    latency_ms: float
    error_rate: float
    def __init__(self, backend_id: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., load: _Optional[float] = ..., latency_ms: _Optional[float] = ..., error_rate: _Optional[float] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("backend_id", "schema_version", "values", "as_of", "points_in_window", "window_covered_s")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    POINTS_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COVERED_S_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    schema_version: str
    values: _containers.RepeatedScalarFieldContainer[float]
    as_of: _timestamp_pb2.Timestamp
    points_in_window: int
    window_covered_s: float
    def __init__(self, backend_id: _Optional[str] = ..., schema_version: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points_in_window: _Optional[int] = ..., window_covered_s: _Optional[float] = ...) -> None: ...
