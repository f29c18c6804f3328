"""The cut-off rule of services.predictor.calibration on forecasts built by hand."""

from __future__ import annotations

import numpy as np

from services.predictor.calibration import MIN_OVER, cutoff


def test_the_cut_off_is_the_lowest_forecast_that_reaches_the_precision_target():
    # Forecasts 1..100 ms; a breach followed every forecast from 60 up, and
    # one in two from 40 to 59.
    forecasts = np.arange(1.0, 101.0)
    labels = np.where(forecasts >= 60, 400.0, np.where((forecasts >= 40) & (forecasts % 2 == 0), 400.0, 100.0))
    # From 38 up: 41 + 10 hits of 63 forecasts (0.81); from 37 up: 51 of 64 (0.797).
    assert cutoff(forecasts, labels, 300.0) == 38.0


def test_without_a_cut_off_that_reaches_the_target_the_most_precise_counted_one_is_taken():
    forecasts = np.arange(1.0, 101.0)
    never = np.full_like(forecasts, 100.0)
    # Every precision is 0: the first counted cut-off from the top, MIN_OVER forecasts.
    assert cutoff(forecasts, never, 300.0) == 100.0 - MIN_OVER + 1


def test_too_few_forecasts_fit_nothing():
    assert cutoff(np.arange(1.0, 11.0), np.full(10, 400.0), 300.0) is None
