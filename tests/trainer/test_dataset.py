from __future__ import annotations

import random

import numpy as np
import pytest

from services.common import features, synthetic
from services.common.telemetry import Point, read_csv, write_csv
from services.common.window import Window, WindowLimits
from services.trainer import dataset

LIMITS = WindowLimits()


def _series(backend: str, latencies: list[float], start: float = 1000.0, step: float = 10.0) -> list[Point]:
    return [Point(backend, start + i * step, 10.0 + i, lat, 0.01) for i, lat in enumerate(latencies)]


def test_label_is_the_worst_latency_of_the_horizon_and_rows_without_a_full_horizon_are_dropped():
    latencies = [100.0, 120.0, 90.0, 400.0, 80.0, 70.0, 60.0, 500.0, 50.0, 40.0]
    data = dataset.build(_series("a", latencies), horizon_s=30.0, limits=LIMITS)
    # t = 1000 + 10 i; the label of row i is max(latencies[i+1 : i+4]); the
    # last point is at 1090, so rows after 1060 lack a full horizon.
    assert data.times.tolist() == [1000.0 + 10 * i for i in range(7)]
    assert data.y.tolist() == [400.0, 400.0, 400.0, 80.0, 500.0, 500.0, 500.0]
    assert data.current_latency_ms.tolist() == latencies[:7]
    assert data.unlabelled == 3
    assert data.X.shape == (7, features.N_FEATURES)
    assert set(data.backend_ids.tolist()) == {"a"}


def test_the_horizon_end_is_inclusive_and_its_start_exclusive():
    points = [Point("a", 100.0, 1.0, 900.0, 0.0), Point("a", 130.0, 1.0, 50.0, 0.0)]
    data = dataset.build(points, horizon_s=30.0, limits=LIMITS)
    # Row at 100 sees only the point at 130 (its own 900 ms is not ahead of it).
    assert data.y.tolist() == [50.0]
    assert data.unlabelled == 1


def test_a_row_whose_horizon_holds_no_point_is_dropped_even_inside_the_history():
    points = [*_series("a", [10.0, 20.0, 30.0]), *_series("a", [40.0, 50.0, 60.0], start=2000.0)]
    data = dataset.build(points, horizon_s=20.0, limits=LIMITS)
    # 1020 has nothing in (1020, 1040]; 2010 and 2020 run past the end.
    assert data.times.tolist() == [1000.0, 1010.0, 2000.0]
    assert data.y.tolist() == [30.0, 30.0, 60.0]
    assert data.unlabelled == 3


def test_rows_of_several_backends_are_sorted_by_time_then_backend():
    points = _series("b", [1.0, 2.0, 3.0, 4.0]) + _series("a", [5.0, 6.0, 7.0, 8.0], start=1005.0)
    data = dataset.build(points, horizon_s=10.0, limits=LIMITS)
    assert data.times.tolist() == [1000.0, 1005.0, 1010.0, 1015.0, 1020.0, 1025.0]
    assert data.backend_ids.tolist() == ["b", "a", "b", "a", "b", "a"]
    assert data.y.tolist() == [2.0, 6.0, 3.0, 7.0, 4.0, 8.0]


def test_out_of_order_csv_with_a_duplicate_time_gives_the_rows_of_the_sorted_history(tmp_path):
    ordered = _series("a", [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]) + _series("b", [7.0, 8.0, 9.0, 10.0, 11.0])
    shuffled = list(ordered)
    random.Random(4).shuffle(shuffled)
    # A second report for a@1020 after the first: the later one wins.
    replaced = Point("a", 1020.0, 99.0, 999.0, 0.5)
    path = tmp_path / "history.csv"
    write_csv(path, [*shuffled, replaced])

    from_csv = dataset.build(read_csv(path), horizon_s=20.0, limits=LIMITS)
    expected_points = [replaced if (p.backend_id, p.observed_at) == ("a", 1020.0) else p for p in ordered]
    expected = dataset.build(expected_points, horizon_s=20.0, limits=LIMITS)

    np.testing.assert_array_equal(from_csv.X, expected.X)
    np.testing.assert_array_equal(from_csv.y, expected.y)
    np.testing.assert_array_equal(from_csv.times, expected.times)
    assert from_csv.backend_ids.tolist() == expected.backend_ids.tolist()
    a_rows = from_csv.backend_ids == "a"
    assert from_csv.y[a_rows].tolist() == [999.0, 999.0, 140.0, 150.0]
    assert from_csv.current_latency_ms[a_rows].tolist() == [100.0, 110.0, 999.0, 130.0]


def test_features_equal_what_a_window_fed_the_same_points_computes():
    """Training/serving agreement: the same Window, the same feature code."""
    limits = WindowLimits(span_s=120.0, max_points=8)
    history = synthetic.random_history(5, n_backends=2, duration_s=1800.0)
    data = dataset.build(history.points, horizon_s=60.0, limits=limits)
    assert len(data) > 300
    for backend in ("backend-00", "backend-01"):
        window = Window(limits)
        online: dict[float, np.ndarray] = {}
        for p in history.points:
            if p.backend_id == backend:
                window.add(p.observed_at, p.load, p.latency_ms, p.error_rate)
                online[p.observed_at] = features.compute(window)
        rows = np.flatnonzero(data.backend_ids == backend)
        assert len(rows) > 100
        for row in rows:
            np.testing.assert_array_equal(data.X[row], online[float(data.times[row])])


def test_future_max_matches_a_brute_force_on_irregular_times():
    rng = np.random.default_rng(8)
    times = np.cumsum(rng.uniform(0.5, 20.0, 400))
    values = rng.lognormal(4, 1, 400)
    got = dataset.future_max(times, values, 45.0)
    for i, t in enumerate(times):
        ahead = values[(times > t) & (times <= t + 45.0)]
        if t + 45.0 > times[-1] or len(ahead) == 0:
            assert np.isnan(got[i])
        else:
            assert got[i] == ahead.max()


def test_empty_history_gives_an_empty_dataset():
    data = dataset.build([], horizon_s=300.0, limits=LIMITS)
    assert len(data) == 0
    assert data.X.shape == (0, features.N_FEATURES)


@pytest.mark.parametrize("horizon_s", [0.0, -1.0, float("nan"), float("inf")])
def test_horizon_must_be_positive(horizon_s):
    with pytest.raises(ValueError, match="horizon_s"):
        dataset.build(_series("a", [1.0, 2.0]), horizon_s=horizon_s, limits=LIMITS)
