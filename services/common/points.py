"""Telemetry points between their plain form (services.common.telemetry.Point)
and the wire form (ace.v1.TelemetryPoint)."""

from __future__ import annotations

from ace.v1 import telemetry_pb2
from services.common.telemetry import Point
from services.common.timeutil import set_timestamp, to_seconds


def to_message(point: Point) -> telemetry_pb2.TelemetryPoint:
    msg = telemetry_pb2.TelemetryPoint(
        backend_id=point.backend_id, load=point.load, latency_ms=point.latency_ms, error_rate=point.error_rate
    )
    set_timestamp(msg.observed_at, point.observed_at)
    return msg


def from_message(msg: telemetry_pb2.TelemetryPoint) -> Point:
    return Point(msg.backend_id, to_seconds(msg.observed_at), msg.load, msg.latency_ms, msg.error_rate)
