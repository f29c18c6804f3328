import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.window import TIME, Window, WindowLimits


def times(w: Window) -> list[float]:
    return [float(t) for t in w.rows[:, TIME]]


def test_out_of_order_points_are_inserted_in_event_time_order():
    w = Window(WindowLimits(span_s=300, max_points=10))
    for t in (10, 30, 20, 25):
        assert w.add(t, 1, 1, 0)
    assert times(w) == [10, 20, 25, 30]


def test_a_point_at_a_time_already_held_replaces_it():
    w = Window(WindowLimits())
    w.add(10, 1, 100, 0)
    w.add(10, 2, 200, 0)
    assert len(w) == 1
    assert w.rows[0].tolist() == [10, 2, 200, 0]


def test_points_older_than_the_window_are_refused_and_change_nothing():
    w = Window(WindowLimits(span_s=60, max_points=10))
    w.add(100, 1, 1, 0)
    assert not w.add(39, 1, 1, 0)
    assert w.add(40, 1, 1, 0)
    assert times(w) == [40, 100]


def test_the_window_slides_by_event_time_and_by_point_cap():
    w = Window(WindowLimits(span_s=60, max_points=4))
    for t in range(0, 100, 10):
        w.add(t, t, 1, 0)
    # span: 30..90 would be 7 points, the cap keeps the newest 4.
    assert times(w) == [60, 70, 80, 90]
    w.add(200, 1, 1, 0)
    assert times(w) == [200]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=200))
def test_matches_a_plain_reference_for_any_arrival_order(arrivals):
    limits = WindowLimits(span_s=50, max_points=8)
    w = Window(limits)
    kept: dict[float, float] = {}
    for i, t in enumerate(arrivals):
        newest = max(kept) if kept else None
        accepted = w.add(float(t), float(i), 0, 0)
        assert accepted == (newest is None or t >= newest - limits.span_s)
        if accepted:
            kept[float(t)] = float(i)
            top = max(kept)
            kept = {k: v for k, v in kept.items() if k >= top - limits.span_s}
            kept = dict(sorted(kept.items())[-limits.max_points :])
    assert times(w) == sorted(kept)
    np.testing.assert_array_equal(w.rows[:, 1], [kept[t] for t in sorted(kept)])


def test_empty_window_has_no_newest_time():
    w = Window(WindowLimits())
    assert w.newest_time is None and len(w) == 0
    with pytest.raises(IndexError):
        _ = w.rows[0]


def test_the_time_covered_is_newest_minus_oldest_whatever_the_interval():
    for interval in (10.0, 60.0):
        w = Window(WindowLimits(span_s=300, max_points=256))
        assert w.covered_s == 0
        w.add(1000.0, 1, 1, 0)
        assert w.covered_s == 0  # one point covers no time
        w.add(1000.0 + interval, 1, 1, 0)
        assert w.covered_s == interval
        # Past the span, old points go and the covered time stops at the span.
        for k in range(2, 40):
            w.add(1000.0 + k * interval, 1, 1, 0)
        assert w.covered_s == 300.0
