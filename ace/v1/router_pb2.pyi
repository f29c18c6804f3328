import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    PRIMARY: _ClassVar[Action]
    REROUTE: _ClassVar[Action]
    ROUND_ROBIN: _ClassVar[Action]
    LAST_RESORT: _ClassVar[Action]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    CLOSED: _ClassVar[BreakerState]
    OPEN: _ClassVar[BreakerState]
    HALF_OPEN: _ClassVar[BreakerState]

class DecisionBasis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_BASIS_UNSPECIFIED: _ClassVar[DecisionBasis]
    FORECAST: _ClassVar[DecisionBasis]
    OBSERVED_LATENCY: _ClassVar[DecisionBasis]
    COLD_START: _ClassVar[DecisionBasis]
    NO_TELEMETRY: _ClassVar[DecisionBasis]
    MODEL_UNPROVEN: _ClassVar[DecisionBasis]
    OBSERVED_OVER_FORECAST: _ClassVar[DecisionBasis]

class OutcomeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_STATUS_UNSPECIFIED: _ClassVar[OutcomeStatus]
    ACCEPTED: _ClassVar[OutcomeStatus]
    DUPLICATE: _ClassVar[OutcomeStatus]
    REJECTED: _ClassVar[OutcomeStatus]
ACTION_UNSPECIFIED: Action
PRIMARY: Action
REROUTE: Action
ROUND_ROBIN: Action
LAST_RESORT: Action
BREAKER_STATE_UNSPECIFIED: BreakerState
CLOSED: BreakerState
OPEN: BreakerState
HALF_OPEN: BreakerState
DECISION_BASIS_UNSPECIFIED: DecisionBasis
FORECAST: DecisionBasis
OBSERVED_LATENCY: DecisionBasis
COLD_START: DecisionBasis
NO_TELEMETRY: DecisionBasis
MODEL_UNPROVEN: DecisionBasis
OBSERVED_OVER_FORECAST: DecisionBasis
OUTCOME_STATUS_UNSPECIFIED: OutcomeStatus
ACCEPTED: OutcomeStatus
DUPLICATE: OutcomeStatus
REJECTED: OutcomeStatus

class DecideRequest(_message.Message):
    __slots__ = ("request_id", "candidates", "in_flight")
    class InFlightEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    in_flight: _containers.ScalarMap[str, int]
    def __init__(self, request_id: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., in_flight: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("request_id", "backend_id", "action", "predicted_latency_ms", "reason", "model_version", "fallbacks", "basis", "breaker_state", "as_of", "skipped", "decision_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    backend_id: str
    action: Action
    predicted_latency_ms: float
    reason: str
    model_version: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    basis: DecisionBasis
    breaker_state: BreakerState
    as_of: _timestamp_pb2.Timestamp
    skipped: _containers.RepeatedScalarFieldContainer[str]
    decision_id: str
    def __init__(self, request_id: _Optional[str] = ..., backend_id: _Optional[str] = ..., action: _Optional[_Union[Action, str]] = ..., predicted_latency_ms: _Optional[float] = ..., reason: _Optional[str] = ..., model_version: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., basis: _Optional[_Union[DecisionBasis, str]] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., skipped: _Optional[_Iterable[str]] = ..., decision_id: _Optional[str] = ...) -> None: ...

class GetRoutingTableRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchRoutingTableRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RoutingTable(_message.Message):
    __slots__ = ("backends", "partial", "model_version", "threshold_ms", "horizon_s", "predictor_available", "feature_store_connected", "cold_start_points", "open_penalty", "error_penalty", "error_decay_s", "warm_after_s", "model_proven", "trust_reason", "share_by_capacity", "open_share", "rate_aware", "capacity_deadband")
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_STORE_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    COLD_START_POINTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_PENALTY_FIELD_NUMBER: _ClassVar[int]
    ERROR_PENALTY_FIELD_NUMBER: _ClassVar[int]
    ERROR_DECAY_S_FIELD_NUMBER: _ClassVar[int]
    WARM_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROVEN_FIELD_NUMBER: _ClassVar[int]
    TRUST_REASON_FIELD_NUMBER: _ClassVar[int]
    SHARE_BY_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    OPEN_SHARE_FIELD_NUMBER: _ClassVar[int]
    RATE_AWARE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_DEADBAND_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[BackendRoute]
    partial: bool
    model_version: str
    threshold_ms: float
    horizon_s: float
    predictor_available: bool
    feature_store_connected: bool
    cold_start_points: int
    open_penalty: float
    error_penalty: float
    error_decay_s: float
    warm_after_s: float
    model_proven: bool
    trust_reason: str
    share_by_capacity: bool
    open_share: float
    rate_aware: bool
    capacity_deadband: float
    def __init__(self, backends: _Optional[_Iterable[_Union[BackendRoute, _Mapping]]] = ..., partial: _Optional[bool] = ..., model_version: _Optional[str] = ..., threshold_ms: _Optional[float] = ..., horizon_s: _Optional[float] = ..., predictor_available: _Optional[bool] = ..., feature_store_connected: _Optional[bool] = ..., cold_start_points: _Optional[int] = ..., open_penalty: _Optional[float] = ..., error_penalty: _Optional[float] = ..., error_decay_s: _Optional[float] = ..., warm_after_s: _Optional[float] = ..., model_proven: _Optional[bool] = ..., trust_reason: _Optional[str] = ..., share_by_capacity: _Optional[bool] = ..., open_share: _Optional[float] = ..., rate_aware: _Optional[bool] = ..., capacity_deadband: _Optional[float] = ...) -> None: ...

class BackendRoute(_message.Message):
    __slots__ = ("backend_id", "state", "predicted_latency_ms", "observed_latency_ms", "as_of", "points_in_window", "cold", "basis", "state_since", "risk_ms", "window_covered_s", "capacity_rps")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    POINTS_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    RISK_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_COVERED_S_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_RPS_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    state: BreakerState
    predicted_latency_ms: float
    observed_latency_ms: float
    as_of: _timestamp_pb2.Timestamp
    points_in_window: int
    cold: bool
    basis: DecisionBasis
    state_since: _timestamp_pb2.Timestamp
    risk_ms: float
    window_covered_s: float
    capacity_rps: float
    def __init__(self, backend_id: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ..., predicted_latency_ms: _Optional[float] = ..., observed_latency_ms: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points_in_window: _Optional[int] = ..., cold: _Optional[bool] = ..., basis: _Optional[_Union[DecisionBasis, str]] = ..., state_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., risk_ms: _Optional[float] = ..., window_covered_s: _Optional[float] = ..., capacity_rps: _Optional[float] = ...) -> None: ...

class GetRiskReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RiskReport(_message.Message):
    __slots__ = ("as_of", "horizon_s", "threshold_ms", "model_version", "backends", "backends_at_risk", "model_proven", "trust_reason")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    HORIZON_S_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_AT_RISK_FIELD_NUMBER: _ClassVar[int]
    MODEL_PROVEN_FIELD_NUMBER: _ClassVar[int]
    TRUST_REASON_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    horizon_s: float
    threshold_ms: float
    model_version: str
    backends: _containers.RepeatedCompositeFieldContainer[BackendRisk]
    backends_at_risk: int
    model_proven: bool
    trust_reason: str
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon_s: _Optional[float] = ..., threshold_ms: _Optional[float] = ..., model_version: _Optional[str] = ..., backends: _Optional[_Iterable[_Union[BackendRisk, _Mapping]]] = ..., backends_at_risk: _Optional[int] = ..., model_proven: _Optional[bool] = ..., trust_reason: _Optional[str] = ...) -> None: ...

class BackendRisk(_message.Message):
    __slots__ = ("backend_id", "predicted_latency_ms", "observed_latency_ms", "breaches", "headroom_ms", "state", "basis", "drivers", "forecast_ms")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    BREACHES_FIELD_NUMBER: _ClassVar[int]
    HEADROOM_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    DRIVERS_FIELD_NUMBER: _ClassVar[int]
    FORECAST_MS_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    predicted_latency_ms: float
    observed_latency_ms: float
    breaches: bool
    headroom_ms: float
    state: BreakerState
    basis: DecisionBasis
    drivers: _containers.RepeatedCompositeFieldContainer[RiskDriver]
    forecast_ms: float
    def __init__(self, backend_id: _Optional[str] = ..., predicted_latency_ms: _Optional[float] = ..., observed_latency_ms: _Optional[float] = ..., breaches: _Optional[bool] = ..., headroom_ms: _Optional[float] = ..., state: _Optional[_Union[BreakerState, str]] = ..., basis: _Optional[_Union[DecisionBasis, str]] = ..., drivers: _Optional[_Iterable[_Union[RiskDriver, _Mapping]]] = ..., forecast_ms: _Optional[float] = ...) -> None: ...

class RiskDriver(_message.Message):
    __slots__ = ("feature", "value", "z_score", "weight")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    feature: str
    value: float
    z_score: float
    weight: float
    def __init__(self, feature: _Optional[str] = ..., value: _Optional[float] = ..., z_score: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class ReportOutcomesRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("decision_id", "latency_ms", "quality", "failed")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    latency_ms: float
    quality: float
    failed: bool
    def __init__(self, decision_id: _Optional[str] = ..., latency_ms: _Optional[float] = ..., quality: _Optional[float] = ..., failed: _Optional[bool] = ...) -> None: ...

class OutcomeReceipt(_message.Message):
    __slots__ = ("index", "status", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    status: OutcomeStatus
    reason: str
    def __init__(self, index: _Optional[int] = ..., status: _Optional[_Union[OutcomeStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportOutcomesResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[OutcomeReceipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[OutcomeReceipt, _Mapping]]] = ...) -> None: ...

class GetPolicyShadowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyShadowReport(_message.Message):
    __slots__ = ("live_threshold_ms", "alternative_threshold_ms", "decisions", "differing", "pairs", "compared", "missing_live", "missing_alternative", "live_breaches", "alternative_breaches", "only_live_breached", "only_alternative_breached", "p_value", "significant", "reason")
    LIVE_THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    DIFFERING_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    MISSING_LIVE_FIELD_NUMBER: _ClassVar[int]
    MISSING_ALTERNATIVE_FIELD_NUMBER: _ClassVar[int]
    LIVE_BREACHES_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_BREACHES_FIELD_NUMBER: _ClassVar[int]
    ONLY_LIVE_BREACHED_FIELD_NUMBER: _ClassVar[int]
    ONLY_ALTERNATIVE_BREACHED_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    live_threshold_ms: float
    alternative_threshold_ms: float
    decisions: int
    differing: int
    pairs: int
    compared: int
    missing_live: int
    missing_alternative: int
    live_breaches: int
    alternative_breaches: int
    only_live_breached: int
    only_alternative_breached: int
    p_value: float
    significant: bool
    reason: str
    def __init__(self, live_threshold_ms: _Optional[float] = ..., alternative_threshold_ms: _Optional[float] = ..., decisions: _Optional[int] = ..., differing: _Optional[int] = ..., pairs: _Optional[int] = ..., compared: _Optional[int] = ..., missing_live: _Optional[int] = ..., missing_alternative: _Optional[int] = ..., live_breaches: _Optional[int] = ..., alternative_breaches: _Optional[int] = ..., only_live_breached: _Optional[int] = ..., only_alternative_breached: _Optional[int] = ..., p_value: _Optional[float] = ..., significant: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ExplainDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class DecisionRecord(_message.Message):
    __slots__ = ("decision_id", "backend_id", "decided_at", "as_of", "risk_ms", "model_version", "latency_ms", "quality", "threshold_ms", "backend_now")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    RISK_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_NOW_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    backend_id: str
    decided_at: _timestamp_pb2.Timestamp
    as_of: _timestamp_pb2.Timestamp
    risk_ms: float
    model_version: str
    latency_ms: float
    quality: float
    threshold_ms: float
    backend_now: BackendRoute
    def __init__(self, decision_id: _Optional[str] = ..., backend_id: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., risk_ms: _Optional[float] = ..., model_version: _Optional[str] = ..., latency_ms: _Optional[float] = ..., quality: _Optional[float] = ..., threshold_ms: _Optional[float] = ..., backend_now: _Optional[_Union[BackendRoute, _Mapping]] = ...) -> None: ...
