"""The on-disk history without a network: what goes in comes back by range
and backend, segments roll and age out, a torn tail is cut at restart."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from services.common.errors import InvalidInput
from services.common.telemetry import Point
from services.feature_store import history as history_module
from services.feature_store.history import OPEN_SUFFIX, Codec, History, Retention, decode, encode, event_range

T0 = 1_767_225_600.0
BIG = Retention(max_bytes=1 << 30, max_age_s=1e9)


def points(backend: str, start: float, n: int, step: float = 10.0) -> list[Point]:
    return [Point(backend, start + i * step, 10.0 + i, 100.0 + i, 0.01) for i in range(n)]


def read_all(history: History, start: float = -math.inf, end: float = math.inf, **kw) -> list[Point]:
    return [p for batch in history.read(start, end, **kw) for p in batch]


def test_records_round_trip_exactly():
    given = [Point("gpu-a", T0 + 0.125, 1.5, 250.25, 0.5), Point("b", T0, 0.0, 0.0, 0.0)]
    raw = encode(given)
    assert decode(raw) == (given, len(raw))


def test_decoding_stops_at_a_torn_record():
    raw = encode(points("a", T0, 3))
    got, used = decode(raw[:-5])
    assert got == points("a", T0, 2)
    assert used == len(encode(points("a", T0, 2)))


@pytest.mark.parametrize(
    "bad",
    [
        Point("a", math.nan, 1.0, 50.0, 0.0),
        Point("a", -math.inf, 1.0, 50.0, 0.0),
        Point("a", 1e300, 1.0, 50.0, 0.0),  # no Timestamp can carry it
        Point("a", 1e-12, 1.0, 50.0, 0.0),  # a Timestamp would carry it as 0, a time the store refuses
        Point("a", T0, -1.0, 50.0, 0.0),
        Point("a", T0, 1.0, math.inf, 0.0),
        Point("a", T0, 1.0, 50.0, 1.7e159),
    ],
)
def test_decoding_stops_at_values_the_store_never_accepts(bad):
    # Found by `make fuzz` (trainer target): a damaged segment was served
    # as it was, and the trainer got these points.
    good = points("a", T0, 2)
    got, used = decode(encode([*good, bad, *points("a", T0 + 100, 2)]))
    assert (got, used) == (good, len(encode(good)))


def test_reads_a_range_in_arrival_order_in_batches(tmp_path: Path, request: pytest.FixtureRequest):
    history = History(tmp_path, BIG)
    request.addfinalizer(history.close)
    history.append(points("b", T0 + 5, 10))
    history.append(points("a", T0, 10))
    got = read_all(history, T0 + 20, T0 + 50)
    assert [(p.backend_id, p.observed_at - T0) for p in got] == [
        ("b", 25.0),
        ("b", 35.0),
        ("b", 45.0),
        ("a", 20.0),
        ("a", 30.0),
        ("a", 40.0),
    ]
    batches = list(history.read(-math.inf, math.inf, batch_points=7))
    assert [len(b) for b in batches] == [7, 7, 6]
    assert read_all(history, backend_ids=["a"]) == points("a", T0, 10)


def test_history_survives_a_restart_and_new_points_follow_the_old(tmp_path: Path):
    first = History(tmp_path, BIG)
    first.append(points("a", T0, 5))
    first.close()
    second = History(tmp_path, BIG)
    second.append(points("a", T0 + 50, 5))
    assert read_all(second) == points("a", T0, 5) + points("a", T0 + 50, 5)
    assert second.newest == T0 + 90
    second.close()


def test_a_torn_tail_left_by_a_crash_is_cut_at_start(tmp_path: Path):
    history = History(tmp_path, BIG)
    history.append(points("a", T0, 4))
    (open_segment,) = tmp_path.glob(f"*{OPEN_SUFFIX}")
    with open_segment.open("ab") as handle:  # half a record, as a kill mid-write leaves it
        handle.write(encode(points("a", T0 + 40, 1))[:9])
    history.close()  # only the handle: the torn bytes stay, as after a kill
    restarted = History(tmp_path, BIG)
    assert read_all(restarted) == points("a", T0, 4)
    restarted.append(points("a", T0 + 40, 1))
    assert read_all(restarted) == points("a", T0, 4) + points("a", T0 + 40, 1)
    restarted.close()


def test_segments_roll_and_the_oldest_go_when_the_size_is_exceeded(tmp_path: Path):
    retention = Retention(max_bytes=64 << 10, max_age_s=1e9)  # segments of 8 KiB
    history = History(tmp_path, retention)
    for i in range(100):  # 100 batches of 50 points of 35 bytes: 175 KB in all
        history.append(points("a", T0 + i * 500, 50))
    assert history.size_bytes <= retention.max_bytes
    assert len(list(tmp_path.glob("*.seg"))) >= 6
    kept = read_all(history)
    history.close()
    # What is kept is the newest, without a gap.
    assert kept[-1].observed_at == T0 + 99 * 500 + 49 * 10
    times = [p.observed_at for p in kept]
    assert times == sorted(times) and len(times) == round((times[-1] - times[0]) / 10) + 1


def test_segments_older_than_the_age_go(tmp_path: Path):
    retention = Retention(max_bytes=1 << 20, max_age_s=3600)  # segments of 128 KiB
    history = History(tmp_path, retention)
    for hour in range(6):  # 4000 points, 140 KB: one segment each
        history.append(points("a", T0 + hour * 3600, 4000, step=0.5))
    recent = points("a", T0 + 9.5 * 3600, 4000, step=0.5)
    history.append(recent)
    history.append(points("b", T0 + 10 * 3600, 10))
    assert read_all(history, backend_ids=["a"]) == recent
    assert read_all(history, backend_ids=["b"]) == points("b", T0 + 10 * 3600, 10)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    history.close()


@pytest.mark.parametrize(
    ("start", "end", "last_s", "newest", "expected"),
    [
        (None, None, 0.0, None, (-math.inf, math.inf)),
        (T0, T0 + 10, 0.0, T0, (T0, T0 + 10)),
        (None, None, 60.0, T0, (T0 - 60, math.nextafter(T0, math.inf))),
        (None, None, 60.0, None, (0.0, 0.0)),
    ],
)
def test_event_range(start, end, last_s, newest, expected):
    assert event_range(start, end, last_s, newest) == expected


@pytest.mark.parametrize(
    ("start", "end", "last_s", "field"),
    [(T0, T0 - 1, 0.0, "end_time"), (T0, None, 60.0, "last_s"), (None, None, math.nan, "last_s")],
)
def test_event_range_names_the_bad_field(start, end, last_s, field):
    with pytest.raises(InvalidInput, match=f"^{field}:"):
        event_range(start, end, last_s, T0)


def test_a_read_of_recent_points_skips_the_open_segments_older_appends_and_loses_none(
    tmp_path: Path, request: pytest.FixtureRequest
):
    history = History(tmp_path, BIG)
    request.addfinalizer(history.close)
    rng = random.Random(7)
    sent: list[Point] = []
    for k in range(200):
        # Mostly forward in time, some appends reaching back (late points).
        base = T0 + k * 10 - (rng.random() * 300 if k % 7 == 0 else 0)
        batch = [Point(f"b{j}", base + j, 1.0, 100.0, 0.0) for j in range(3)]
        history.append(batch)
        sent.extend(batch)
    for start in (T0 - 1000, T0 + 500, T0 + 1000.5, T0 + 1990, T0 + 5000):
        expected = [p for p in sent if p.observed_at >= start]
        assert read_all(history, start) == expected, start
    # The skip is real: a read from near the newest starts near the end.
    open_segment = history._open  # the one place to see it without timing
    assert open_segment.skip_before(T0 + 1990) > open_segment.size * 0.9
    assert open_segment.skip_before(T0 - 1000) == 0


@pytest.mark.parametrize("index_entries", [128, 3])
def test_reads_in_small_chunks_across_many_sealed_segments_lose_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, index_entries: int
):
    # Chunks of 100 bytes cut records everywhere: each torn one must be carried
    # into the next chunk, and the skip must hold for sealed segments too,
    # their index whole (about 60 appends a segment) or thinned to 3 entries.
    monkeypatch.setattr(history_module, "READ_CHUNK_BYTES", 100)
    monkeypatch.setattr(history_module, "SEALED_INDEX_ENTRIES", index_entries)
    history = History(tmp_path, Retention(max_bytes=64 << 10, max_age_s=1e9))  # segments of 8 KiB
    request.addfinalizer(history.close)
    rng = random.Random(11)
    sent: list[Point] = []
    for k in range(400):
        base = T0 + k * 10 - (rng.random() * 300 if k % 7 == 0 else 0)
        batch = [Point(f"backend-{j}", base + j, 1.0, 100.0 + k, 0.0) for j in range(3)]
        history.append(batch)
        sent.extend(batch)
    assert len(history._sealed) >= 5
    for start in (T0 - 1000, T0 + 777.5, T0 + 2000, T0 + 3990, T0 + 9000):
        assert read_all(history, start) == [p for p in sent if p.observed_at >= start], start
    segment = history._sealed[1]
    if index_entries == 3:
        assert len(segment.ends) == 3 and segment.ends[-1] == segment.size
        assert 0 < segment.skip_before(segment.newest) < segment.size
    else:  # a read from its newest appends starts near its end
        assert segment.skip_before(segment.newest) > segment.size * 0.9


def test_a_chunked_read_stops_at_damage_in_a_sealed_segment_and_goes_on_with_the_next(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(history_module, "READ_CHUNK_BYTES", 64)
    history = History(tmp_path, Retention(max_bytes=64 << 10, max_age_s=1e9))  # segments of 8 KiB
    request.addfinalizer(history.close)
    for i in range(10):  # 10 batches of 50 points: two sealed segments and an open one
        history.append(points("a", T0 + i * 500, 50))
    first, second = history._sealed[:2]
    record = len(encode(points("a", T0, 1)))
    # What a read holds at once stays within two chunks, damage or not.
    sizes: list[int] = []

    def measured_decode(raw: bytes) -> tuple[list[Point], int]:
        sizes.append(len(raw))
        return decode(raw)

    history._codec = Codec(encode, measured_decode)
    with first.path.open("r+b") as f:
        f.seek(20 * record)
        f.write(b"\xff\xff")  # the 21st record's id length: no longer a record
    kept = read_all(history)
    in_first = first.size // record
    assert kept[:20] == points("a", T0, 20)
    # Nothing of the first segment after the damage; everything after it.
    assert kept[20:] == [p for b in range(10) for p in points("a", T0 + b * 500, 50)][in_first:]
    assert second.size > 0
    assert max(sizes) <= 2 * 64
