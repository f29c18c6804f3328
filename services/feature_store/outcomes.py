"""Outcome summaries: the latency and quality outcomes of routed requests,
summed per backend and bucket of event time by the router, kept on disk
beside the telemetry history for the trainer.

Records go through the same segment log as the points (history.SegmentLog),
in a directory of their own, so retention and torn-tail recovery are the
same code. A record is the backend id's length (u16), the id in ASCII, then
bucket_start and bucket_s (doubles), quality_count and latency_count (u32),
quality_sum, latency_sum_ms and latency_max_ms (doubles), little-endian.

Batch ids are remembered in memory only (the latest MAX_BATCH_IDS): a batch
resent across a store restart is stored twice. The router resends only a
batch whose answer it lost, so that takes a restart within the few seconds
between a send and its retry.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common.outcome_summary import Summary
from services.common.telemetry import BACKEND_ID, MAX_MAGNITUDE, MAX_OBSERVED_AT
from services.feature_store.history import Codec, Retention, SegmentLog
from services.feature_store.store import Rejection

MAX_BUCKET_S = 3600.0
MAX_BATCH_IDS = 10_000
# The directory under --history-dir that holds the summaries.
SUBDIRECTORY = "outcomes"

_HEAD = struct.Struct("<H")
_VALUES = struct.Struct("<2d2I3d")


def problem(s: Summary) -> str | None:
    """Why a summary cannot be stored, naming the field; None when it can.
    Comparisons are written so that NaN fails them."""
    if not BACKEND_ID.match(s.backend_id):
        return "backend_id: must be 1 to 128 printable ASCII characters without spaces"
    # From one nanosecond: a Timestamp holds no less, so a smaller positive
    # time (damaged bytes on disk) would be sent by ReadHistory as 0.
    if not 1e-9 <= s.bucket_start <= MAX_OBSERVED_AT:
        return f"bucket_start: must be a time after 1970-01-01 and before 10000, got {s.bucket_start!r}"
    if not 0 < s.bucket_s <= MAX_BUCKET_S:
        return f"bucket_s: must be > 0 and <= {MAX_BUCKET_S:g}, got {s.bucket_s!r}"
    if s.quality_count == 0 and s.latency_count == 0:
        return "quality_count: a summary needs quality_count or latency_count > 0"
    if not 0 <= s.quality_sum <= s.quality_count:
        return f"quality_sum: must be in [0, quality_count = {s.quality_count}], got {s.quality_sum!r}"
    if not 0 <= s.latency_max_ms <= MAX_MAGNITUDE:
        return f"latency_max_ms: must be in [0, {MAX_MAGNITUDE:g}], got {s.latency_max_ms!r}"
    if s.latency_count == 0 and s.latency_max_ms:
        return "latency_max_ms: must be 0 when latency_count is 0"
    # With slack for rounding: n equal latencies summed one by one can come
    # to a little more than their maximum times n (six times 0.7 sum to 4.2,
    # and 0.7 * 6 is 4.199999999999999).
    if not 0 <= s.latency_sum_ms <= s.latency_max_ms * s.latency_count * (1 + 1e-9):
        return (
            f"latency_sum_ms: must be in [0, latency_max_ms x latency_count = "
            f"{s.latency_max_ms * s.latency_count:g}], got {s.latency_sum_ms!r}"
        )
    return None


def encode(summaries: Sequence[Summary]) -> bytes:
    out = bytearray()
    for s in summaries:
        name = s.backend_id.encode("ascii")
        out += _HEAD.pack(len(name))
        out += name
        out += _VALUES.pack(
            s.bucket_start,
            s.bucket_s,
            s.quality_count,
            s.latency_count,
            s.quality_sum,
            s.latency_sum_ms,
            s.latency_max_ms,
        )
    return bytes(out)


def decode(raw: bytes) -> tuple[list[Summary], int]:
    """The whole records at the start of raw and how many bytes they take;
    stops at the first torn record or one the store would have refused."""
    found: list[Summary] = []
    offset = 0
    while offset + _HEAD.size <= len(raw):
        (length,) = _HEAD.unpack_from(raw, offset)
        end = offset + _HEAD.size + length + _VALUES.size
        if end > len(raw):
            break
        name = raw[offset + _HEAD.size : end - _VALUES.size].decode("ascii", errors="replace")
        start, width, q_count, l_count, q_sum, l_sum, l_max = _VALUES.unpack_from(raw, end - _VALUES.size)
        summary = Summary(name, start, width, q_count, q_sum, l_count, l_sum, l_max)
        if problem(summary) is not None:
            break
        found.append(summary)
        offset = end
    return found, offset


CODEC: Codec[Summary] = Codec(encode, decode)


@dataclass(frozen=True)
class Ingested:
    accepted: int
    rejected: tuple[Rejection, ...]
    duplicate: bool  # the batch id was seen before; nothing stored


class OutcomeLog:
    """Thread-safe. The summaries on disk and the batch ids seen lately."""

    def __init__(self, history_dir: Path, retention: Retention) -> None:
        self.log = SegmentLog(history_dir / SUBDIRECTORY, retention, CODEC)
        self._lock = threading.Lock()
        self._batches: OrderedDict[str, None] = OrderedDict()

    def ingest(self, batch_id: str, summaries: Iterable[Summary]) -> Ingested:
        with self._lock:
            if batch_id in self._batches:
                return Ingested(0, (), True)
            self._batches[batch_id] = None
            if len(self._batches) > MAX_BATCH_IDS:
                self._batches.popitem(last=False)
        kept: list[Summary] = []
        rejected: list[Rejection] = []
        for i, s in enumerate(summaries):
            why = problem(s)
            if why is None:
                kept.append(s)
            else:
                rejected.append(Rejection(i, why))
        self.log.append(kept)
        return Ingested(len(kept), tuple(rejected), False)

    def read(
        self, start: float, end: float, backend_ids: Sequence[str] = (), batch: int = 4096
    ) -> Iterator[list[Summary]]:
        """Summaries whose bucket starts in [start, end), in the order stored."""
        return self.log.read(start, end, backend_ids, batch)

    def close(self) -> None:
        self.log.close()
