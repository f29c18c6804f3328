"""The store without a network: validation, window rules, caps, vectors and
the change feed watchers read."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services.common import features
from services.common.errors import NotFound
from services.common.telemetry import Point
from services.common.window import Window, WindowLimits
from services.feature_store.store import Rejection, Store

T0 = 1_767_225_600.0


def pt(backend_id: str = "a", t: float = T0, load: float = 10.0, latency_ms: float = 50.0, error_rate: float = 0.0):
    return Point(backend_id, t, load, latency_ms, error_rate)


def make_store(span_s: float = 300.0, max_points: int = 256, max_backends: int = 100) -> Store:
    return Store(WindowLimits(span_s=span_s, max_points=max_points), max_backends)


def test_each_invalid_point_is_rejected_naming_its_field_and_its_valid_neighbours_are_kept():
    store = make_store()
    batch: list[Point | str] = [
        pt("a", T0),
        pt("", T0),
        pt("has space", T0),
        pt("a", T0 + 1),
        pt("b", -5.0),
        pt("b", math.inf),
        pt("b", T0, load=math.nan),
        pt("b", T0, latency_ms=-1.0),
        pt("b", T0, error_rate=1.5),
        pt("b", T0, latency_ms=1e308),
        "observed_at: required",
        pt("b", T0 + 2),
    ]
    result = store.ingest(batch)
    assert result.accepted == 3
    assert [r.index for r in result.rejected] == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    fields = [r.reason.split(":")[0] for r in result.rejected]
    assert fields == [
        "backend_id",
        "backend_id",
        "observed_at",
        "observed_at",
        "load",
        "latency_ms",
        "error_rate",
        "latency_ms",
        "observed_at",
    ]
    assert result.rejected[4].reason == "load: must be finite and >= 0, got nan"
    assert [(v.backend_id, v.points_in_window) for v in store.vectors()] == [("a", 2), ("b", 1)]


def test_an_empty_batch_accepts_nothing():
    store = make_store()
    result = store.ingest([])
    assert result.accepted == 0
    assert result.rejected == ()
    assert store.vectors() == []


def test_rejection_indexes_start_at_first_index():
    result = make_store().ingest([pt(), pt(latency_ms=-1.0)], first_index=40)
    assert result.rejected == (Rejection(41, "latency_ms: must be finite and >= 0, got -1.0"),)


def test_points_out_of_order_are_stored_in_event_time_order():
    store = make_store()
    shuffled = [pt(t=T0 + 30, latency_ms=90.0), pt(t=T0 + 10, latency_ms=60.0), pt(t=T0 + 20, latency_ms=70.0)]
    assert store.ingest(shuffled).accepted == 3

    ordered = Window(store.limits)
    for p in sorted(shuffled, key=lambda p: p.observed_at):
        ordered.add(p.observed_at, p.load, p.latency_ms, p.error_rate)
    (vector,) = store.vectors()
    assert vector.as_of == T0 + 30
    assert vector.points_in_window == 3
    np.testing.assert_array_equal(vector.values, features.compute(ordered))


def test_a_point_at_a_held_time_replaces_it_so_a_retried_batch_is_idempotent():
    store = make_store()
    batch = [pt(t=T0, latency_ms=50.0), pt(t=T0 + 10, latency_ms=55.0)]
    store.ingest(batch)
    first = store.vectors()[0]
    retry = store.ingest(batch)
    assert retry.accepted == 2  # replacements count as stored
    again = store.vectors()[0]
    assert again.points_in_window == 2
    np.testing.assert_array_equal(again.values, first.values)

    store.ingest([pt(t=T0 + 10, latency_ms=99.0)])
    (vector,) = store.vectors()
    assert vector.points_in_window == 2
    assert vector.values[features.FEATURE_NAMES.index("latency_ms")] == 99.0


def test_a_point_older_than_the_window_is_rejected():
    store = make_store(span_s=300.0)
    store.ingest([pt(t=T0 + 1000)])
    result = store.ingest([pt(t=T0 + 699), pt(t=T0 + 700), pt("other", t=T0)])
    assert result.accepted == 2  # the window's edge is inside it; other backends have their own windows
    (rejection,) = result.rejected
    assert rejection.index == 0
    assert rejection.reason.startswith("observed_at: older than the window (")
    assert "newest point of a" in rejection.reason
    assert store.vectors(["a"])[0].points_in_window == 2


def test_points_that_would_break_a_vector_or_its_timestamp_are_rejected():
    store = make_store()
    result = store.ingest([pt(t=9.3e18), pt(load=1e200), pt(latency_ms=1e155), pt(t=T0 + 1)])
    assert [r.reason.split(":")[0] for r in result.rejected] == ["observed_at", "load", "latency_ms"]
    assert result.accepted == 1
    assert all(np.isfinite(store.vectors()[0].values))


def test_the_window_drops_points_older_than_its_span():
    store = make_store(span_s=60.0)
    store.ingest([pt(t=T0 + s) for s in range(0, 60, 10)])
    assert store.vectors()[0].points_in_window == 6
    store.ingest([pt(t=T0 + 100)])
    (vector,) = store.vectors()
    assert vector.points_in_window == 3  # T0+40, T0+50, T0+100
    assert vector.as_of == T0 + 100


def test_the_window_holds_at_most_max_points():
    store = make_store(max_points=4)
    store.ingest([pt(t=T0 + s) for s in range(10)])
    assert store.vectors()[0].points_in_window == 4


def test_points_for_new_backends_beyond_the_cap_are_rejected_and_known_ones_still_accepted():
    store = make_store(max_backends=2)
    result = store.ingest([pt("a"), pt("b"), pt("c"), pt("a", t=T0 + 1), pt("d")])
    assert result.accepted == 3
    assert result.rejected == (
        Rejection(2, "backend_id: backend cap of 2 reached"),
        Rejection(4, "backend_id: backend cap of 2 reached"),
    )
    assert store.backend_count == 2
    assert [v.backend_id for v in store.vectors()] == ["a", "b"]


def test_vectors_are_sorted_by_backend_id_and_all_are_returned_when_none_are_named():
    store = make_store()
    store.ingest([pt("zeta"), pt("alpha"), pt("Mid"), pt("beta")])
    assert [v.backend_id for v in store.vectors()] == ["Mid", "alpha", "beta", "zeta"]
    assert [v.backend_id for v in store.vectors(["zeta", "alpha", "zeta"])] == ["alpha", "zeta"]


def test_naming_an_unknown_backend_is_not_found():
    store = make_store()
    store.ingest([pt("a")])
    with pytest.raises(NotFound, match=r"backend_ids\[1\]: unknown backend 'nope'"):
        store.vectors(["a", "nope"])


def test_a_vector_follows_its_window_and_cannot_be_changed_by_a_caller():
    store = make_store()
    store.ingest([pt(t=T0, latency_ms=50.0)])
    before = store.vectors()[0]
    with pytest.raises(ValueError):
        before.values[0] = 1.0
    store.ingest([pt(t=T0 + 10, latency_ms=80.0)])
    after = store.vectors()[0]
    assert after.as_of == T0 + 10
    assert after.values[features.FEATURE_NAMES.index("latency_max_ms")] == 80.0
    assert before.values[features.FEATURE_NAMES.index("latency_max_ms")] == 50.0


def test_a_subscription_coalesces_changes_per_backend():
    store = make_store()
    store.ingest([pt("early")])
    subscription = store.subscribe()
    for i in range(1, 50):
        store.ingest([pt("a", t=T0 + i), pt("b", t=T0 + i)])
    store.ingest([pt("a", latency_ms=-1.0)])  # rejected: changes nothing
    assert subscription.wait(0) == {"a", "b"}
    assert subscription.wait(0) == set()


def test_a_waiting_subscription_wakes_on_a_change():
    store = make_store()
    subscription = store.subscribe()
    with ThreadPoolExecutor(max_workers=1) as pool:
        changed = pool.submit(subscription.wait, 30.0)
        store.ingest([pt("a")])
        assert changed.result(timeout=10) == {"a"}


def test_closing_the_store_ends_every_subscription_now_and_later():
    store = make_store()
    subscription = store.subscribe()
    with ThreadPoolExecutor(max_workers=1) as pool:
        changed = pool.submit(subscription.wait, 30.0)
        store.close()
        assert changed.result(timeout=10) is None
    assert store.closed
    assert store.subscribe().wait(0) is None
    assert store.ingest([pt("a")]).accepted == 1  # reads and writes outlive the watchers


def test_concurrent_writers_lose_no_point():
    store = make_store(span_s=10_000.0, max_points=1000)
    writers = 8

    def write(w: int) -> int:
        return sum(store.ingest([pt(f"w{w}", t=T0 + i), pt("shared", t=T0 + w * 100 + i)]).accepted for i in range(100))

    with ThreadPoolExecutor(max_workers=writers) as pool:
        accepted = sum(pool.map(write, range(writers)))
    assert accepted == 2 * writers * 100
    counts = {v.backend_id: v.points_in_window for v in store.vectors()}
    assert counts == {**{f"w{w}": 100 for w in range(writers)}, "shared": writers * 100}
