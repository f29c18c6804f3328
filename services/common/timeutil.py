"""Event time travels as google.protobuf.Timestamp on the wire and as float
seconds since the epoch inside the logic modules."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def to_timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    set_timestamp(ts, seconds)
    return ts


def set_timestamp(ts: Timestamp, seconds: float) -> None:
    whole = math.floor(seconds)
    ts.seconds = whole
    ts.nanos = min(round((seconds - whole) * 1e9), 999_999_999)


def iso(seconds: float) -> str:
    """An event time as people read it in messages: RFC 3339 in UTC."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
