"""The trust gate: whether a model version's forecasts may drive breakers on
this fleet. A pure function over the version's scores on the fleet's own
labels (scoring.Scores), applied on every evaluation tick.

A version ships knowing nothing about the fleet it is put in front of: the
first model `make up` trains learns synthetic history, and on a fleet it had
never seen it opened breakers 17.9 times per fault-free backend-hour at a
precision of 0.07 (issue 14's measurement). So trust is earned, not given:

    PROVEN once, on at least `min_labels` labels with at least `min_breaches`
    breaches among them, breach precision >= min_precision and breach
    recall >= min_recall.

Until then the router runs its breakers on observed latency and the
forecast runs in shadow (scored all the same). A candidate promoted over a
proven version before its own labels judge it inherits that trust
(at_promotion). Evidence can also take trust
away: on the same number of labels, a version whose forecast breaches are
mostly not followed by one (precision under min_precision, including a
fleet with no breach at all) is UNPROVEN again. While the window holds too
little evidence either way (a quiet hour), the last verdict stands: a quiet
hour proves nothing, and flipping a fleet between forecast and reactive
breakers on every quiet spell would be a thrash of its own.

Why these defaults:
- precision 0.5: a breaker that opens on a false forecast moves a quarter
  of a pool's traffic onto the other three; below one true breach in two
  forecast, the openings cost more than they save (issue 13's arithmetic:
  one of four backends drained at 55% load puts the others at 73%);
- recall 0.5: the reactive breaker the router falls back to catches about
  half the breaches in its horizon (0.52 on issue 14's fleet); a model
  that catches fewer has nothing to add;
- min_breaches 20: the labels of one breach episode are the forecasts made
  over the horizon before it, 30 of them for one backend at a point every
  10 s; 20 asks for at least most of one real episode, not a blip;
- min_labels 200: as the promotion gate (services.predictor.gate), so the
  two gates judge on the same footing.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.predictor.calibration import fit_scale
from services.predictor.scoring import Label, Scores, score


class Trust(enum.Enum):
    # Not (yet) shown to forecast this fleet's breaches: runs in shadow.
    UNPROVEN = "UNPROVEN"
    # Passed the gate on this fleet's labels: drives the breakers.
    PROVEN = "PROVEN"


@dataclass(frozen=True)
class TrustSettings:
    # False: every active version drives the breakers at once (the behaviour
    # before the gate; for a model validated on this fleet by other means).
    enabled: bool = True
    min_labels: int = 200
    min_breaches: int = 20
    min_precision: float = 0.5
    min_recall: float = 0.5
    # A proven version loses its trust only below the bars x (1 - this): a
    # fleet near the bar would otherwise flip between forecast and reactive
    # breakers every few minutes (tools.stream_fleet showed it at 0.45/0.51).
    hysteresis: float = 0.2

    def __post_init__(self) -> None:
        for name in ("min_labels", "min_breaches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("min_precision", "min_recall", "hysteresis"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"{name}: must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class TrustVerdict:
    trust: Trust
    reason: str  # for the logs, health and the router's answers
    # Whether the labels were enough to judge; False while waiting for them.
    judged: bool = False

    @property
    def proven(self) -> bool:
        return self.trust is Trust.PROVEN


UNSCORED = TrustVerdict(Trust.UNPROVEN, "not scored on this fleet's labels yet")
GATE_OFF = TrustVerdict(Trust.PROVEN, "trust gate off: every active version drives the breakers")


def _ratio(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def judge(scores: Scores, previous: TrustVerdict, settings: TrustSettings) -> TrustVerdict:
    """The version's verdict after this tick; `previous` is its last one
    (UNSCORED at first)."""
    if not settings.enabled:
        return GATE_OFF
    s = scores
    figures = (
        f"{s.labels} labels, {s.actual_breaches} breaches, {s.predicted_breaches} forecast; "
        f"precision {_ratio(s.breach_precision)}, recall {_ratio(s.breach_recall)}"
    )
    # To keep trust a version needs less than to earn it.
    keep = 1.0 - settings.hysteresis if previous.proven else 1.0
    min_precision, min_recall = settings.min_precision * keep, settings.min_recall * keep
    bar = (
        f"the bar{' to stay proven' if previous.proven else ''}: precision >= {min_precision:g} and "
        f"recall >= {min_recall:g} on >= {settings.min_labels} labels with >= {settings.min_breaches} breaches"
    )
    enough_labels = s.labels >= settings.min_labels
    if enough_labels and s.predicted_breaches >= settings.min_breaches:
        # Enough forecast breaches to judge precision, whatever happened.
        precision = s.breach_precision or 0.0
        if precision < min_precision:
            return TrustVerdict(
                Trust.UNPROVEN, f"too many forecast breaches not followed by one ({figures}); {bar}", judged=True
            )
    if not enough_labels or s.actual_breaches < settings.min_breaches:
        if previous.trust is Trust.PROVEN:
            # What earned the trust, then what the window holds now.
            earned = previous.reason.split(";")[0]
            return TrustVerdict(Trust.PROVEN, f"{earned}; too few labels to judge again ({figures})")
        return TrustVerdict(Trust.UNPROVEN, f"waiting for evidence ({figures}); {bar}")
    recall = s.breach_recall or 0.0
    precision = s.breach_precision or 0.0
    if recall >= min_recall and precision >= min_precision:
        return TrustVerdict(Trust.PROVEN, f"proven on this fleet ({figures})", judged=True)
    return TrustVerdict(Trust.UNPROVEN, f"below the bar ({figures}); {bar}", judged=True)


def at_promotion(candidate: TrustVerdict, active: TrustVerdict, active_version: str) -> TrustVerdict:
    """The verdict a candidate starts with as the active version. A
    candidate the labels have not judged yet inherits a proven active
    version's trust: the promotion gate found it no worse on the same
    labels, and a fleet whose quiet spell shows no breach would otherwise
    fall back to reactive breakers at every retrain. One the labels judged
    keeps its own verdict; the next ticks judge the inherited one as any."""
    if candidate.judged or candidate.proven or not active.proven:
        return candidate
    return TrustVerdict(
        Trust.PROVEN, f"inherited at promotion from {active_version}, proven; not yet judged on its own"
    )


def assess(
    labels: Sequence[Label],
    threshold_ms: float,
    previous: TrustVerdict,
    scale: float,
    settings: TrustSettings,
    calibrate: bool,
) -> tuple[TrustVerdict, float]:
    """One tick's verdict on a version and the scale its forecasts are
    served at, from its labels (raw forecasts) and its previous verdict and
    scale. With `calibrate`, the scale is refitted once the labels hold as
    many labels and breaches as the gate asks (services.predictor.
    calibration), else kept; the gate judges the scaled forecasts."""
    raw = score(labels, threshold_ms)
    if not calibrate:
        scale = 1.0
    elif raw.labels >= settings.min_labels and raw.actual_breaches >= settings.min_breaches:
        predicted = np.asarray([x.predicted_ms for x in labels])
        actual = np.asarray([x.actual_ms for x in labels])
        scale = fit_scale(predicted, actual, threshold_ms, scale)
    scores = raw
    if scale != 1.0:
        scores = score([replace(x, predicted_ms=x.predicted_ms * scale) for x in labels], threshold_ms)
    return judge(scores, previous, settings), scale
