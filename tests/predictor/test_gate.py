import math

import pytest

from services.predictor.gate import GateSettings, Metric, Verdict, promotion, rollback
from services.predictor.scoring import Label, Paired, score

H = 300.0


def paired(first: list[float], second: list[float], actual: list[float]) -> Paired:
    """Two versions' forecasts on the same labels."""

    def labels(version: str, predicted: list[float]) -> list[Label]:
        return [Label(version, "a", float(i), H, p, a) for i, (p, a) in enumerate(zip(predicted, actual, strict=True))]

    return Paired("first", "second", score(labels("first", first), 300), score(labels("second", second), 300))


RAW = GateSettings(metric=Metric.MAE_MS, promote_margin=0.1, rollback_margin=0.2, min_labels=4)


class TestPromotion:
    def test_waits_for_enough_shared_labels(self):
        d = promotion(paired([100] * 3, [100] * 3, [100] * 3), RAW)
        assert d.verdict is Verdict.WAIT
        assert "3 of 4 shared labels" in d.reason
        assert math.isnan(d.limit)

    def test_promotes_a_candidate_within_the_margin(self):
        # Active MAE 100 ms; the candidate may reach 110 ms.
        d = promotion(paired([210] * 4, [200] * 4, [100] * 4), RAW)
        assert (d.verdict, d.subject_error, d.reference_error, d.labels) == (Verdict.PROMOTE, 110, 100, 4)
        assert d.limit == pytest.approx(110)
        assert d.reason.startswith("promote first")

    def test_refuses_a_candidate_just_past_the_margin(self):
        d = promotion(paired([211] * 4, [200] * 4, [100] * 4), RAW)
        assert d.verdict is Verdict.REFUSE
        assert "refuse first" in d.reason and "same 4 labels" in d.reason

    def test_the_metric_decides_which_errors_count(self):
        # The candidate is exact on the spike and 40 % off on the calm labels;
        # the active one is 20 % off everywhere, which costs it 200 ms on the spike.
        actual = [100.0, 100.0, 100.0, 1000.0]
        candidate = [140.0, 140.0, 140.0, 1000.0]
        active = [120.0, 120.0, 120.0, 1200.0]
        log = GateSettings(metric=Metric.LOG_MAE, promote_margin=0.0, min_labels=4)
        raw = GateSettings(metric=Metric.MAE_MS, promote_margin=0.0, min_labels=4)
        assert promotion(paired(candidate, active, actual), raw).verdict is Verdict.PROMOTE
        assert promotion(paired(candidate, active, actual), log).verdict is Verdict.REFUSE


class TestRollback:
    def test_keeps_an_active_version_that_is_not_clearly_worse(self):
        # Previous MAE 100 ms; rollback above 120 ms.
        d = rollback(paired([220] * 4, [200] * 4, [100] * 4), RAW)
        assert d.verdict is Verdict.KEEP
        assert d.reason.startswith("keep first")

    def test_rolls_back_an_active_version_clearly_worse(self):
        d = rollback(paired([221] * 4, [200] * 4, [100] * 4), RAW)
        assert (d.verdict, d.subject_error, d.reference_error) == (Verdict.ROLL_BACK, 121, 100)
        assert d.reason.startswith("roll back first to second")

    def test_waits_for_enough_shared_labels(self):
        assert rollback(paired([900] * 3, [100] * 3, [100] * 3), RAW).verdict is Verdict.WAIT


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("promote_margin", {"promote_margin": -0.1}),
        ("rollback_margin", {"rollback_margin": math.nan}),
        ("min_labels", {"min_labels": 0}),
    ],
)
def test_settings_name_the_bad_field(field, kwargs):
    with pytest.raises(ValueError, match=field):
        GateSettings(**kwargs)
