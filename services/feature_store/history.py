"""The feature store's history on disk: every accepted point is appended to
segment files, kept within a size and an event-time age, and read back by
event-time range (the trainer learns from it).

Layout under the history directory:
    <seq>.open                        the segment being appended to
    <seq>-<oldest_ms>-<newest_ms>.seg a sealed segment; the name carries the
                                      event-time range of its points, so
                                      reads and retention never open it to
                                      find out

A record is the backend id's length (u16), the id in ASCII, then observed_at,
load, latency_ms and error_rate as little-endian doubles. Records are only
ever appended. A segment is sealed (renamed) when it is full or when the
store restarts; a crash can leave a torn last record, which the restart cuts
off. Retention deletes whole sealed segments, oldest first, while the total
exceeds max_bytes or while a segment's newest point is more than max_age_s
of event time older than the newest point held.

Writes go to the page cache, not to the platter: a killed process loses
nothing, a crashed node the last moments, which a training history can
spare. A write that fails (a full disk) is logged and dropped; serving
goes on.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import re
import struct
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Generic, Protocol, TypeVar

import structlog

from services.common.errors import InvalidInput
from services.common.telemetry import BACKEND_ID, MAX_MAGNITUDE, MAX_OBSERVED_AT, Point

_log = structlog.get_logger("feature_store.history")

_HEAD = struct.Struct("<H")
_VALUES = struct.Struct("<4d")
SEGMENT_BYTES = 4 << 20
MIN_SEGMENT_BYTES = 4 << 10
# Reads go through a segment this many bytes at a time, so that what a read
# holds at once does not grow with the segment: decoding a whole 4 MiB
# segment made about 190 000 points at once, and the soak's feature store
# grew with the allocator's high-water mark of those bursts.
READ_CHUNK_BYTES = 256 << 10
# Entries of a sealed segment's skip index: a read skips to within a
# 1/128 of the segment (32 KiB of a full one) of where its records start.
SEALED_INDEX_ENTRIES = 128
OPEN_SUFFIX = ".open"
SEALED = re.compile(r"^(\d{10})-(\d+)-(\d+)\.seg$")


@dataclass(frozen=True)
class Retention:
    max_bytes: int  # of all segments together
    max_age_s: float  # event time kept before the newest point held

    @property
    def segment_bytes(self) -> int:
        # Eight segments or more in the budget, so that dropping the oldest
        # gives back an eighth at most.
        return max(MIN_SEGMENT_BYTES, min(SEGMENT_BYTES, self.max_bytes // 8))


@dataclass
class _Segment:
    seq: int
    path: Path
    oldest: float = math.inf  # event time of its points, seconds
    newest: float = -math.inf
    size: int = 0

    def covers(self, start: float, end: float) -> bool:
        return self.size > 0 and self.oldest < end and self.newest >= start

    # After each append, its end offset and the newest event time up to
    # there. A read from `start` skips every append whose running newest is
    # before it: none of their records can be wanted. Any subset of the
    # entries skips correctly, only less far, so a sealed segment keeps
    # SEALED_INDEX_ENTRIES of them; a segment adopted from a previous run has
    # none and is read from its start.
    ends: array[int] = field(default_factory=lambda: array("q"))
    tops: array[float] = field(default_factory=lambda: array("d"))

    def note(self, record: Record) -> None:
        self.oldest = min(self.oldest, record.observed_at)
        self.newest = max(self.newest, record.observed_at)

    def appended(self) -> None:
        self.ends.append(self.size)
        self.tops.append(self.newest)

    def skip_before(self, start: float) -> int:
        """Bytes at the start of the segment that hold only records older
        than `start`; always a record boundary."""
        i = bisect.bisect_left(self.tops, start)
        return self.ends[i - 1] if i > 0 else 0

    def thinned(self) -> tuple[array[int], array[float]]:
        """The index cut to SEALED_INDEX_ENTRIES evenly spaced entries, the
        last one kept. In full it takes 16 bytes an append: 150 KB for a
        segment of 10-point appends, about 10 MB across the 64 segments of
        the default history, for skips no finer than a read needs."""
        step = max(1, math.ceil(len(self.ends) / SEALED_INDEX_ENTRIES))
        first = (len(self.ends) - 1) % step
        return self.ends[first::step], self.tops[first::step]


class Record(Protocol):
    """What a log keeps segments of: anything with a backend and an event time."""

    @property
    def backend_id(self) -> str: ...

    @property
    def observed_at(self) -> float: ...


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Codec(Generic[R]):
    """How records become bytes and back; decode returns the whole records
    at the start of the bytes and how many bytes they take."""

    encode: Callable[[Sequence[R]], bytes]
    decode: Callable[[bytes], tuple[list[R], int]]


def encode(points: Sequence[Point]) -> bytes:
    out = bytearray()
    for p in points:
        name = p.backend_id.encode("ascii")
        out += _HEAD.pack(len(name))
        out += name
        out += _VALUES.pack(p.observed_at, p.load, p.latency_ms, p.error_rate)
    return bytes(out)


def decode(raw: bytes) -> tuple[list[Point], int]:
    """The whole records at the start of raw, and how many bytes they take.
    Decoding stops at the first record that is torn or not a record: a bad
    backend id, or values the store would have refused."""
    points: list[Point] = []
    offset = 0
    names: dict[bytes, str] = {}  # one str per backend, not one per point
    while offset + _HEAD.size <= len(raw):
        (length,) = _HEAD.unpack_from(raw, offset)
        end = offset + _HEAD.size + length + _VALUES.size
        if end > len(raw):
            break
        key = raw[offset + _HEAD.size : offset + _HEAD.size + length]
        name = names.get(key)
        if name is None:
            name = key.decode("ascii", errors="replace")
            if not BACKEND_ID.match(name):
                break
            names[key] = name
        t, load, latency, error = _VALUES.unpack_from(raw, end - _VALUES.size)
        # The store writes only points it accepted, so values it would refuse
        # (NaN, out of range) mean the bytes were damaged: serving them would
        # hand the trainer garbage and break ReadHistory on an unsendable time.
        # problem()'s rules, written out: comparisons are false for NaN, and
        # this loop runs for every point a training reads.
        if not (
            1e-9 <= t <= MAX_OBSERVED_AT  # a Timestamp holds nothing finer than 1 ns
            and 0.0 <= load <= MAX_MAGNITUDE
            and 0.0 <= latency <= MAX_MAGNITUDE
            and 0.0 <= error <= 1.0
        ):
            break
        points.append(Point(name, t, load, latency, error))
        offset = end
    return points, offset


def event_range(start: float | None, end: float | None, last_s: float, newest: float | None) -> tuple[float, float]:
    """The [start, end) of event time a ReadHistory request asks for.
    InvalidInput names the field that breaks a rule."""
    if not math.isfinite(last_s) or last_s < 0:
        raise InvalidInput(f"last_s: must be a finite number >= 0, got {last_s!r}")
    if last_s > 0:
        if start is not None or end is not None:
            raise InvalidInput("last_s: leave start_time and end_time unset when last_s is given")
        if newest is None:
            return 0.0, 0.0
        # The newest point itself is included: the range ends just after it.
        return newest - last_s, math.nextafter(newest, math.inf)
    lower = -math.inf if start is None else start
    upper = math.inf if end is None else end
    if upper < lower:
        raise InvalidInput(f"end_time: must not be before start_time ({upper} < {lower})")
    return lower, upper


def _sealed_name(seq: int, oldest: float, newest: float) -> str:
    # Whole milliseconds, rounded outwards so that the range still covers
    # every point.
    return f"{seq:010d}-{math.floor(oldest * 1000)}-{math.ceil(newest * 1000)}.seg"


class SegmentLog(Generic[R]):
    """Thread-safe. One lock orders appends and retention; reads copy the
    open segment under it and read sealed segments, which never change,
    without it. History is the log of points; the outcome summaries
    (services.feature_store.outcomes) are kept by the same code."""

    def __init__(self, directory: Path, retention: Retention, codec: Codec[R]) -> None:
        self.directory = directory
        self.retention = retention
        self._codec = codec
        self._lock = threading.Lock()
        self._sealed: list[_Segment] = []
        self._newest = -math.inf
        self._failing = False
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.iterdir()):
            self._adopt(path)
        self._sealed.sort(key=lambda s: s.seq)
        self._open = self._new_segment()
        self._file: BinaryIO | None = self._open.path.open("ab")
        self._apply_retention()
        _log.info(
            "history_opened",
            directory=str(directory),
            segments=len(self._sealed),
            size_bytes=self.size_bytes,
            max_bytes=retention.max_bytes,
            max_age_s=retention.max_age_s,
        )

    def _adopt(self, path: Path) -> None:
        """Takes over a segment a previous run left: sealed ones as they are,
        an open one cut after its last whole record and sealed."""
        match = SEALED.match(path.name)
        if match:
            seq, oldest, newest = (int(g) for g in match.groups())
            self._sealed.append(_Segment(seq, path, oldest / 1000, newest / 1000, path.stat().st_size))
            self._newest = max(self._newest, newest / 1000)
            return
        if not (path.suffix == OPEN_SUFFIX and path.stem.isdigit()):
            return
        raw = path.read_bytes()
        points, whole = self._codec.decode(raw)
        if whole < len(raw):
            _log.warning("history_torn_tail_cut", path=str(path), bytes_cut=len(raw) - whole)
            with path.open("r+b") as handle:
                handle.truncate(whole)
        if not points:
            path.unlink()
            return
        segment = _Segment(int(path.stem), path, size=whole)
        for p in points:
            segment.note(p)
        self._sealed.append(self._seal(segment))
        self._newest = max(self._newest, segment.newest)

    def _seal(self, segment: _Segment) -> _Segment:
        sealed = segment.path.with_name(_sealed_name(segment.seq, segment.oldest, segment.newest))
        segment.path.rename(sealed)
        return _Segment(segment.seq, sealed, segment.oldest, segment.newest, segment.size, *segment.thinned())

    def _new_segment(self) -> _Segment:
        seq = max((s.seq for s in self._sealed), default=0) + 1
        return _Segment(seq, self.directory / f"{seq:010d}{OPEN_SUFFIX}")

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._sealed) + self._open.size

    @property
    def newest(self) -> float | None:
        """Event time of the newest point held, None when there is none."""
        with self._lock:
            return self._newest if self._sealed or self._open.size else None

    def append(self, points: Sequence[R]) -> None:
        if not points:
            return
        raw = self._codec.encode(points)
        with self._lock:
            try:
                self._write(raw)
            except OSError as exc:
                if not self._failing:
                    _log.error("history_write_failed", reason=str(exc), points_dropped=len(points))
                self._failing = True
                self._recover()
                return
            if self._failing:
                _log.info("history_write_recovered")
                self._failing = False
            for p in points:
                self._open.note(p)
            self._open.appended()
            self._newest = max(self._newest, self._open.newest)
            self._apply_retention()

    def _write(self, raw: bytes) -> None:
        if self._file is None:  # a failed write closed it
            self._open = self._new_segment()
            self._file = self._open.path.open("ab")
        if self._open.size and self._open.size + len(raw) > self.retention.segment_bytes:
            self._file.close()
            self._file = None
            self._sealed.append(self._seal(self._open))
            self._open = self._new_segment()
            self._file = self._open.path.open("ab")
        self._file.write(raw)
        self._file.flush()
        self._open.size += len(raw)

    def _recover(self) -> None:
        """After a failed write, cuts the open segment back to its whole
        records; if even that fails, leaves it for the next start to cut and
        appends to a new one."""
        try:
            assert self._file is not None
            self._file.truncate(self._open.size)
        except (OSError, ValueError, AssertionError):
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            self._file = None

    def _apply_retention(self) -> None:
        oldest_kept = self._newest - self.retention.max_age_s
        total = self.size_bytes
        while self._sealed and (total > self.retention.max_bytes or self._sealed[0].newest < oldest_kept):
            segment = self._sealed.pop(0)
            total -= segment.size
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            _log.info("history_segment_dropped", path=segment.path.name, size_bytes=segment.size)

    def read(
        self, start: float, end: float, backend_ids: Sequence[str] = (), batch_points: int = 4096
    ) -> Iterator[list[R]]:
        """Points with start <= observed_at < end, in the order they were
        accepted, in batches of at most batch_points. Only the named
        backends when any are named."""
        wanted = frozenset(backend_ids)
        with self._lock:
            sealed = [(s.path, s.skip_before(start), s.size) for s in self._sealed if s.covers(start, end)]
            # Opened under the lock: a seal renames the file, and an open
            # handle reads it whatever its name becomes.
            tail = self._open_tail(start) if self._open.covers(start, end) else None
        batch: list[R] = []
        for points in self._records(sealed, tail):
            for p in points:
                if start <= p.observed_at < end and (not wanted or p.backend_id in wanted):
                    batch.append(p)
                    if len(batch) >= batch_points:
                        yield batch
                        batch = []
        if batch:
            yield batch

    def _open_tail(self, start: float) -> tuple[BinaryIO, int, int]:
        """The open segment's file, positioned after the appends that are all
        older than `start`, and the offset its records end at now. A poll
        for the latest points (the predictor's truth feed) used to decode the
        whole open segment each time."""
        skip = self._open.skip_before(start)
        f = self._open.path.open("rb")
        f.seek(skip)
        return f, skip, self._open.size

    def _records(
        self, sealed: list[tuple[Path, int, int]], tail: tuple[BinaryIO, int, int] | None
    ) -> Iterator[list[R]]:
        try:
            for path, skip, size in sealed:
                try:
                    segment: BinaryIO = path.open("rb")
                except FileNotFoundError:  # retention dropped it since: it aged out
                    continue
                with segment:
                    segment.seek(skip)
                    yield from self._chunks(segment, size - skip)
            if tail is not None:
                open_file, skip, size = tail
                yield from self._chunks(open_file, size - skip)
        finally:
            if tail is not None:
                tail[0].close()

    def _chunks(self, f: BinaryIO, length: int) -> Iterator[list[R]]:
        """The records in the next `length` bytes of f, READ_CHUNK_BYTES at a
        time. A chunk's torn last record is carried into the next; a chunk
        that yields no whole record at all holds damage, and decoding stops
        there, as it does at damage anywhere."""
        carry = b""
        while length > 0:
            raw = f.read(min(READ_CHUNK_BYTES, length))
            if not raw:
                return
            length -= len(raw)
            buffer = carry + raw
            records, used = self._codec.decode(buffer)
            if records:
                yield records
            if used == 0 and len(buffer) >= READ_CHUNK_BYTES:
                return
            carry = buffer[used:]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


POINTS: Codec[Point] = Codec(encode, decode)


class History(SegmentLog[Point]):
    """The telemetry points the store accepted."""

    def __init__(self, directory: Path, retention: Retention) -> None:
        super().__init__(directory, retention, POINTS)
