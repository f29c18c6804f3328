import numpy as np
import pytest

from services.common import features
from services.common.features import FEATURE_NAMES, compute
from services.common.window import Window, WindowLimits


def window_of(points: list[tuple[float, float, float, float]]) -> Window:
    w = Window(WindowLimits(span_s=300, max_points=256))
    for p in points:
        w.add(*p)
    return w


def by_name(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, vector.tolist(), strict=True))


def test_one_point_has_zero_rates_and_spread():
    f = by_name(compute(window_of([(100, 50, 120, 0.01)])))
    assert (f["load"], f["latency_ms"], f["error_rate"]) == (50, 120, 0.01)
    assert f["load_rate_per_s"] == f["latency_rate_ms_per_s"] == f["latency_std_ms"] == 0
    assert f["latency_per_load_ms"] == 0


def test_rates_are_slopes_over_the_recent_span_in_event_time():
    # Load flat for 4 minutes, then rising 0.5 rps per second for the last minute.
    points = [(float(t), 50.0, 100.0, 0.0) for t in range(0, 240, 10)]
    points += [(float(t), 50.0 + 0.5 * (t - 240), 100.0 + 2.0 * (t - 240), 0.0) for t in range(240, 301, 10)]
    f = by_name(compute(window_of(points)))
    assert f["load_rate_per_s"] == pytest.approx(0.5)
    assert f["latency_rate_ms_per_s"] == pytest.approx(2.0)
    assert 0 < f["load_trend_per_s"] < 0.5
    assert f["latency_max_ms"] == pytest.approx(220)
    assert f["latency_per_load_ms"] == pytest.approx(4.0, rel=0.05)


def test_vector_is_finite_and_in_schema_order():
    rng = np.random.default_rng(3)
    points = [(float(t), *rng.uniform(0, 500, 2), rng.uniform(0, 1)) for t in range(0, 300, 10)]
    v = compute(window_of(points))
    assert v.shape == (features.N_FEATURES,) and np.isfinite(v).all()
    assert features.SCHEMA_VERSION == "ace.features.v1"


def test_empty_window_is_an_error():
    with pytest.raises(ValueError):
        compute(Window(WindowLimits()))


def test_the_newest_latency_is_found_by_the_names_a_message_carries():
    assert features.latency_index() == features.FEATURE_NAMES.index("latency_ms")
    assert features.latency_index(("latency_ms", "load")) == 0
    assert features.latency_index(("load", "error_rate")) is None


def test_telemetry_every_60_s_has_rates_even_when_a_scrape_comes_late():
    # A ramp reported once a minute, each scrape a little late or early
    # (seeded): the point before the newest is often more than 60 s back, yet
    # the rates are the slope to it, not 0 for want of a second point.
    rng = np.random.default_rng(14)
    t = np.cumsum(60.0 + rng.uniform(-2.0, 2.0, 6))
    rates = []
    for n in range(2, len(t) + 1):
        w = window_of([(float(x), 10.0 + 0.1 * x, 100.0 + 0.5 * x, 0.0) for x in t[:n]])
        f = by_name(compute(w))
        rates.append((f["load_rate_per_s"], f["latency_rate_ms_per_s"]))
    assert any(t[k] - t[k - 1] > features.RATE_SPAN_S for k in range(1, len(t)))  # the case this is about
    assert rates == [pytest.approx((0.1, 0.5))] * len(rates)


def test_at_10_s_the_rates_still_cover_only_the_last_60_s():
    # Flat, then a jump in the last 60 s: the slope sees only the jump's span.
    points = [(float(t), 50.0, 100.0, 0.0) for t in range(0, 250, 10)]
    points += [(float(t), 50.0, 100.0 + 3.0 * (t - 240), 0.0) for t in range(250, 301, 10)]
    f = by_name(compute(window_of(points)))
    recent = np.array([[t, lat] for t, _, lat, _ in points if t >= 240])
    expected = np.polyfit(recent[:, 0], recent[:, 1], 1)[0]
    assert f["latency_rate_ms_per_s"] == pytest.approx(expected)
