"""The trust gate's rule, on scores built from labels."""

from __future__ import annotations

import pytest

from services.predictor.scoring import Label, score
from services.predictor.trust import GATE_OFF, UNSCORED, Trust, TrustSettings, TrustVerdict, at_promotion, judge

THRESHOLD = 300.0
SETTINGS = TrustSettings(min_labels=100, min_breaches=10, min_precision=0.5, min_recall=0.5)


def labels(tp: int, fp: int, fn: int, tn: int):
    """Labels with the given counts of true and false breach forecasts."""
    rows = [(400.0, 400.0)] * tp + [(400.0, 100.0)] * fp + [(100.0, 400.0)] * fn + [(100.0, 100.0)] * tn
    return [Label("v1", "a", float(i), 300.0, p, a) for i, (p, a) in enumerate(rows)]


def verdict(tp: int, fp: int, fn: int, tn: int, previous: TrustVerdict = UNSCORED) -> TrustVerdict:
    return judge(score(labels(tp, fp, fn, tn), THRESHOLD), previous, SETTINGS)


PROVEN = TrustVerdict(Trust.PROVEN, "earlier")


def test_a_version_that_forecasts_the_breaches_is_proven():
    v = verdict(tp=16, fp=4, fn=4, tn=176)
    assert v.trust is Trust.PROVEN
    assert "precision 0.80" in v.reason and "recall 0.80" in v.reason


def test_too_few_labels_or_breaches_wait_unproven():
    assert verdict(tp=9, fp=0, fn=0, tn=191).trust is Trust.UNPROVEN  # 9 breaches of 10
    few = verdict(tp=20, fp=0, fn=0, tn=50)  # 70 labels of 100
    assert few.trust is Trust.UNPROVEN and "waiting for evidence" in few.reason


@pytest.mark.parametrize(
    "counts, why",
    [
        ((4, 1, 16, 179), "recall 0.20"),  # misses most breaches
        ((10, 30, 5, 155), "precision 0.25"),  # most forecast breaches are false
    ],
)
def test_a_version_below_the_bar_is_not_proven(counts, why):
    v = verdict(*counts)
    assert v.trust is Trust.UNPROVEN and why in v.reason


def test_false_breaches_on_a_quiet_fleet_take_trust_away():
    # No breach happened at all: recall cannot be judged, precision can.
    v = verdict(tp=0, fp=12, fn=0, tn=188, previous=PROVEN)
    assert v.trust is Trust.UNPROVEN and "not followed" in v.reason


def test_a_quiet_stretch_keeps_the_last_verdict():
    quiet = (0, 0, 0, 300)
    assert verdict(*quiet, previous=PROVEN).trust is Trust.PROVEN
    assert verdict(*quiet, previous=UNSCORED).trust is Trust.UNPROVEN


def test_recall_below_the_bar_takes_trust_away():
    assert verdict(tp=2, fp=0, fn=18, tn=180, previous=PROVEN).trust is Trust.UNPROVEN


def test_with_the_gate_off_every_version_is_proven():
    off = TrustSettings(enabled=False)
    assert judge(score(labels(0, 50, 50, 100), THRESHOLD), UNSCORED, off) is GATE_OFF


@pytest.mark.parametrize(
    "field, value",
    [("min_labels", 0), ("min_breaches", 0), ("min_precision", 1.5), ("min_recall", -0.1)],
)
def test_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrustSettings(**{field: value})


def test_a_candidate_judged_below_the_bar_does_not_inherit_trust_at_promotion():
    waiting = verdict(tp=0, fp=0, fn=0, tn=300)
    below = verdict(tp=2, fp=0, fn=18, tn=180)
    assert not waiting.judged and below.judged
    assert at_promotion(waiting, PROVEN, "v1").proven
    assert not at_promotion(below, PROVEN, "v1").proven
    assert not at_promotion(waiting, UNSCORED, "v1").proven  # nothing to inherit


def test_a_proven_version_keeps_its_trust_a_little_below_the_bar_it_earned_it_at():
    near = (9, 11, 11, 169)  # precision and recall 0.45: under 0.5, over 0.5 x (1 - 0.2)
    assert verdict(*near).trust is Trust.UNPROVEN
    assert verdict(*near, previous=PROVEN).trust is Trust.PROVEN
    assert verdict(7, 13, 13, 167, previous=PROVEN).trust is Trust.UNPROVEN  # 0.35
