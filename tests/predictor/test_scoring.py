import math
import random

import numpy as np
import pytest

from services.predictor.scoring import Forecast, Label, Limits, Scorer, Spacing, score
from services.trainer.dataset import future_max

H = 300.0


def f(version: str, as_of: float, predicted: float, backend: str = "a", horizon: float = H) -> Forecast:
    return Forecast(version, backend, as_of, horizon, predicted)


def points(backend: str, pairs: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    return [(backend, t, v) for t, v in pairs]


class TestLabels:
    def test_truth_is_the_worst_latency_after_as_of_up_to_the_horizon(self):
        s = Scorer()
        s.add_forecasts([f("v1", 100, 50)])
        # The point at as_of itself is not in the horizon; the one at its end is.
        assert s.observe(points("a", [(100, 999), (200, 80), (300, 120)])) == []
        (label,) = s.observe(points("a", [(400, 90)]))
        assert (label.actual_ms, label.predicted_ms, label.model_version) == (120, 50, "v1")

    def test_waits_for_a_point_of_the_same_backend_past_the_horizon(self):
        s = Scorer()
        s.add_forecasts([f("v1", 0, 50)])
        s.observe(points("a", [(10, 70)]))
        assert s.observe(points("b", [(1000, 1)])) == []  # another backend's clock says nothing
        assert s.observe(points("a", [(299, 60)])) == []
        (label,) = s.observe(points("a", [(300, 65)]))
        assert label.actual_ms == 70

    def test_out_of_order_points_count_until_the_label_is_made(self):
        s = Scorer(Limits(settle_s=20))
        s.add_forecasts([f("v1", 0, 50)])
        s.observe(points("a", [(250, 60), (310, 10)]))  # past the horizon, but inside settle_s
        s.observe(points("a", [(120, 400)]))  # arrives late
        (label,) = s.observe(points("a", [(320, 10)]))
        assert label.actual_ms == 400

    def test_a_horizon_without_points_gets_no_label(self):
        s = Scorer()
        s.add_forecasts([f("v1", 0, 50)])
        assert s.observe(points("a", [(400, 70)])) == []
        assert s.counts().unlabelled == 1

    def test_a_forecast_whose_horizon_has_passed_is_labelled_at_once(self):
        s = Scorer()
        s.observe(points("a", [(0, 10), (100, 30), (350, 20)]))
        (label,) = s.add_forecasts([f("v1", 0, 25)])
        assert label.actual_ms == 30

    def test_agrees_with_the_trainers_label(self):
        rng = random.Random(5)
        times = np.cumsum([rng.uniform(5, 15) for _ in range(400)])
        latencies = np.array([rng.lognormvariate(4.5, 0.8) for _ in times])
        want = future_max(times, latencies, H)
        s = Scorer()
        s.add_forecasts([f("v1", float(t), 100.0) for t in times])
        got: dict[float, float] = {}
        # Batches follow each other in time, the points inside one in any order.
        for start in range(0, len(times), 20):
            batch = list(range(start, min(start + 20, len(times))))
            rng.shuffle(batch)
            for label in s.observe(points("a", [(float(times[i]), float(latencies[i])) for i in batch])):
                got[label.as_of] = label.actual_ms
        labelled = [i for i in range(len(times)) if not math.isnan(want[i])]
        assert len(labelled) > 300
        assert {float(times[i]): float(want[i]) for i in labelled} == {t: got[t] for t in map(float, times[labelled])}

    def test_a_repeated_forecast_is_ignored(self):
        s = Scorer()
        s.add_forecasts([f("v1", 0, 50), f("v1", 0, 50), f("v2", 0, 60)])
        labels = s.observe(points("a", [(100, 70), (300, 70)]))
        assert sorted(x.model_version for x in labels) == ["v1", "v2"]
        s.add_forecasts([f("v1", 0, 55)])  # after its label: still a repeat
        assert s.counts().duplicates == 2
        assert s.scores("v1").labels == 1

    def test_rejects_values_that_are_not_finite(self):
        s = Scorer()
        with pytest.raises(ValueError, match="predicted_ms"):
            s.add_forecasts([f("v1", 0, math.nan)])
        with pytest.raises(ValueError, match="finite"):
            s.observe([("a", 1.0, math.inf)])


class TestScores:
    def test_mae_and_breach_precision_recall(self):
        labels = [
            Label("v", "a", 0, H, 350, 400),  # breach forecast, breach happened
            Label("v", "a", 10, H, 320, 200),  # false alarm
            Label("v", "a", 20, H, 100, 310),  # missed breach
            Label("v", "a", 30, H, 100, 100),
        ]
        s = score(labels, 300)
        assert s.labels == 4
        assert s.mae_ms == pytest.approx((50 + 120 + 210 + 0) / 4)
        assert s.log_mae == pytest.approx(
            sum(abs(math.log1p(p) - math.log1p(a)) for p, a in [(350, 400), (320, 200), (100, 310), (100, 100)]) / 4
        )
        assert (s.predicted_breaches, s.actual_breaches, s.true_breaches) == (2, 2, 1)
        assert (s.breach_precision, s.breach_recall) == (0.5, 0.5)

    def test_empty_scores_say_so(self):
        s = Scorer().scores("never")
        assert s.labels == 0 and math.isnan(s.mae_ms) and s.breach_precision is None and s.breach_recall is None

    def test_paired_scores_use_only_the_labels_both_versions_have(self):
        s = Scorer()
        s.add_forecasts([f("old", t, 100) for t in (0, 10, 20)])
        s.add_forecasts([f("new", t, 150) for t in (10, 20, 30)])
        s.observe(points("a", [(5, 150), (15, 150), (25, 150), (35, 150), (400, 150)]))
        assert s.scores("old").labels == 3
        p = s.paired("new", "old")
        assert p.labels == 2
        assert (p.first.mae_ms, p.second.mae_ms) == (0.0, 50.0)

    def test_forecasts_of_other_horizons_are_not_paired(self):
        s = Scorer()
        s.add_forecasts([f("v1", 0, 100), f("v2", 0, 100, horizon=60)])
        s.observe(points("a", [(30, 100), (400, 100)]))
        assert s.paired("v1", "v2").labels == 0


class TestBounds:
    def test_pending_forecasts_are_bounded_oldest_dropped(self):
        s = Scorer(Limits(max_pending_per_backend=3))
        s.add_forecasts([f("v1", t, 100) for t in (0, 10, 20, 30, 40)])
        c = s.counts()
        assert (c.pending, c.dropped_pending) == (3, 2)
        labels = s.observe(points("a", [(45, 100), (1000, 100)]))
        assert [x.as_of for x in labels] == [20, 30, 40]

    def test_labels_per_version_are_bounded(self):
        s = Scorer(Limits(max_labels_per_version=2, window_s=0))
        s.add_forecasts([f("v1", t, 100) for t in (0, 10, 20)])
        s.observe(points("a", [(25, 100), (1000, 100)]))
        assert s.scores("v1").labels == 2

    def test_versions_are_bounded_least_recently_labelled_forgotten(self):
        s = Scorer(Limits(max_versions=2))
        for i, version in enumerate(["v1", "v2", "v3"]):
            s.add_forecasts([f(version, i * 10, 100)])
        s.observe(points("a", [(35, 100), (1000, 100)]))
        assert s.versions() == ["v2", "v3"]

    def test_metrics_cover_the_recent_window_of_event_time(self):
        s = Scorer(Limits(window_s=100))
        s.add_forecasts([f("v1", t, 100) for t in (0, 50, 150)])
        s.observe(points("a", [(160, 100), (1000, 100)]))
        assert s.scores("v1").labels == 2  # 0 is more than 100 s before the newest label at 150

    def test_points_are_bounded_and_too_old_forecasts_are_not_scored(self):
        s = Scorer(Limits(max_points_per_backend=10))
        s.add_forecasts([f("v1", 0, 100)])
        s.observe(points("a", [(t, 100) for t in range(10, 400, 10)]))
        # The horizon of the forecast at 0 lost points to the bound: no label.
        assert s.scores("v1").labels == 0
        assert s.counts().too_old == 1

    def test_points_no_forecast_needs_are_pruned(self):
        s = Scorer(Limits(window_s=0))
        s.add_forecasts([f("v1", 0, 100)])
        s.observe(points("a", [(t, 100) for t in range(10, 5000, 10)]))
        s.add_forecasts([f("v1", 1000, 100)])  # its points are long gone
        s.add_forecasts([f("v1", 4500, 100)])  # within keep_s of the newest: labelled at once
        assert s.counts().too_old == 1
        assert s.scores("v1").labels == 2

    @pytest.mark.parametrize("field", ["max_pending_per_backend", "max_versions"])
    def test_limits_name_the_bad_field(self, field):
        with pytest.raises(ValueError, match=field):
            Limits(**{field: 0})


def test_spacing_lets_through_labels_whose_horizons_do_not_overlap():
    spacing = Spacing()
    labels = [Label("v", b, t, H, 1, 1) for t in (0, 10, 299, 300, 310, 600) for b in ("a", "b")]
    admitted = [(x.backend_id, x.as_of) for x in labels if spacing.admit(x)]
    assert admitted == [("a", 0), ("b", 0), ("a", 300), ("b", 300), ("a", 600), ("b", 600)]
