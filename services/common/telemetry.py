"""Telemetry as plain values: the point type the logic modules share, the
rules a point must meet, and the CSV form of a history."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

BACKEND_ID = re.compile(r"^[!-~]{1,128}$")  # printable ASCII, no spaces
CSV_HEADER = ("backend_id", "observed_at", "load", "latency_ms", "error_rate")
# Far above any real telemetry. Larger loads and latencies overflow the
# squares the features take (std, slopes) into inf; a later time cannot be
# sent back out as a google.protobuf.Timestamp.
MAX_MAGNITUDE = 1e9
MAX_OBSERVED_AT = 253_402_300_799.0  # 9999-12-31T23:59:59Z


class Point(NamedTuple):
    backend_id: str
    observed_at: float  # event time, seconds since the epoch
    load: float  # requests per second
    latency_ms: float
    error_rate: float  # fraction in [0, 1]


def problem(point: Point, has_time: bool = True) -> str | None:
    """Why a point cannot be stored, naming the field; None when it can."""
    if not point.backend_id:
        return "backend_id: must not be empty"
    if not BACKEND_ID.match(point.backend_id):
        return "backend_id: must be 1 to 128 printable ASCII characters without spaces"
    if not has_time:
        return "observed_at: required"
    if not math.isfinite(point.observed_at) or point.observed_at <= 0:
        return f"observed_at: must be a time after 1970-01-01, got {point.observed_at!r}"
    if point.observed_at > MAX_OBSERVED_AT:
        return f"observed_at: must be before the year 10000, got {point.observed_at!r}"
    for name in ("load", "latency_ms"):
        value = getattr(point, name)
        if not math.isfinite(value) or value < 0:
            return f"{name}: must be finite and >= 0, got {value!r}"
        if value > MAX_MAGNITUDE:
            return f"{name}: must be <= {MAX_MAGNITUDE:g}, got {value!r}"
    if not (0.0 <= point.error_rate <= 1.0):  # also false for NaN
        return f"error_rate: must be in [0, 1], got {point.error_rate!r}"
    return None


def _parse_time(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def read_csv(path: Path) -> Iterator[Point]:
    """Reads a history CSV (header CSV_HEADER; extra columns are ignored).
    Raises ValueError naming the line of the first malformed row."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_HEADER if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:  # broken quoting, NUL bytes
                raise ValueError(f"{path}:{reader.line_num}: {exc}") from exc
            line = reader.line_num
            try:
                point = Point(
                    row["backend_id"],
                    _parse_time(row["observed_at"]),
                    float(row["load"]),
                    float(row["latency_ms"]),
                    float(row["error_rate"]),
                )
            except (ValueError, TypeError) as exc:  # TypeError: a short row leaves fields None
                raise ValueError(f"{path}:{line}: {exc}") from exc
            reason = problem(point)
            if reason:
                raise ValueError(f"{path}:{line}: {reason}")
            yield point


def write_csv(path: Path, points: Iterable[Point]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for p in points:
            writer.writerow(
                (p.backend_id, f"{p.observed_at:.3f}", f"{p.load:.4f}", f"{p.latency_ms:.3f}", f"{p.error_rate:.5f}")
            )
