"""One backend's outcomes over one bucket of event time, as the router sums
them, the feature store keeps them and ReadHistory serves them, and its
OutcomeSummary message both ways."""

from __future__ import annotations

from typing import NamedTuple

from ace.v1 import feature_store_pb2
from services.common.timeutil import set_timestamp, to_seconds


class Summary(NamedTuple):
    backend_id: str
    bucket_start: float  # event time, seconds since the epoch
    bucket_s: float
    quality_count: int = 0
    quality_sum: float = 0.0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0

    @property
    def observed_at(self) -> float:
        """The bucket's start: the event time a history keeps records by."""
        return self.bucket_start


def to_message(s: Summary) -> feature_store_pb2.OutcomeSummary:
    msg = feature_store_pb2.OutcomeSummary(
        backend_id=s.backend_id,
        bucket_s=s.bucket_s,
        quality_count=s.quality_count,
        quality_sum=s.quality_sum,
        latency_count=s.latency_count,
        latency_sum_ms=s.latency_sum_ms,
        latency_max_ms=s.latency_max_ms,
    )
    set_timestamp(msg.bucket_start, s.bucket_start)
    return msg


def from_message(msg: feature_store_pb2.OutcomeSummary) -> Summary:
    return Summary(
        backend_id=msg.backend_id,
        # A missing bucket_start reads as 0, which the store refuses.
        bucket_start=to_seconds(msg.bucket_start) if msg.HasField("bucket_start") else 0.0,
        bucket_s=msg.bucket_s,
        quality_count=msg.quality_count,
        quality_sum=msg.quality_sum,
        latency_count=msg.latency_count,
        latency_sum_ms=msg.latency_sum_ms,
        latency_max_ms=msg.latency_max_ms,
    )
