"""The promotion and rollback rules, as pure functions over two versions
scored on the same labels (scoring.Paired).

Promotion: a candidate running in shadow replaces the active version only
when, on at least `min_labels` shared labels, its error is no worse than
the active one's by more than `promote_margin`:

    candidate_error <= active_error x (1 + promote_margin)

Rollback: after a promotion the previous version keeps running in shadow;
the active one is rolled back when, on at least `min_labels` shared labels,
it is clearly worse:

    active_error > previous_error x (1 + rollback_margin)

The error is the mean absolute error of log(1 + latency) by default
(Metric.LOG_MAE), not of raw milliseconds, because:
- the label is the worst latency of a horizon, heavy-tailed: over a few
  hundred labels raw MAE is decided by the handful of spike windows, so the
  same two models compared on two samples disagree;
- it is what the trainer fits (a forest on log(1 + latency)), so the gate
  judges the candidate by what it was built to do;
- it is relative, so a margin of 2 % means the same at 50 ms and at 500 ms.
Raw MAE (Metric.MAE_MS) remains selectable, and every decision reports both.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from services.predictor.scoring import Paired, Scores


class Metric(enum.Enum):
    # Mean |log(1 + predicted) - log(1 + actual)|: relative error.
    LOG_MAE = "LOG_MAE"
    # Mean |predicted - actual| in milliseconds.
    MAE_MS = "MAE_MS"


class Verdict(enum.Enum):
    # Fewer shared labels than min_labels: nothing is decided yet.
    WAIT = "WAIT"
    # Promotion: the candidate is no worse and replaces the active version.
    PROMOTE = "PROMOTE"
    # Promotion: the candidate is worse by more than the margin and is refused.
    REFUSE = "REFUSE"
    # Rollback: the active version is clearly worse than the previous one.
    ROLL_BACK = "ROLL_BACK"
    # Rollback: the active version is not clearly worse; it stays.
    KEEP = "KEEP"


@dataclass(frozen=True)
class GateSettings:
    metric: Metric = Metric.LOG_MAE
    # A candidate may be this much worse (relative) and still be promoted:
    # it was trained on more recent history, which the shared labels, all
    # from the past, cannot fully credit.
    promote_margin: float = 0.02
    # The active version must be this much worse than the previous one
    # before it is rolled back: a rollback undoes a promotion, so it needs
    # clearer evidence than the promotion had.
    rollback_margin: float = 0.10
    min_labels: int = 200

    def __post_init__(self) -> None:
        for name in ("promote_margin", "rollback_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
        if self.min_labels < 1:
            raise ValueError(f"min_labels: must be >= 1, got {self.min_labels!r}")


@dataclass(frozen=True)
class GateDecision:
    verdict: Verdict
    reason: str  # for the logs and the RPC
    labels: int  # shared labels the decision rests on
    subject_error: float  # the candidate's (promotion) or the active's (rollback), in the metric
    reference_error: float  # the active's (promotion) or the previous version's (rollback)
    limit: float  # the subject may not exceed this; NaN while waiting


def error_of(scores: Scores, metric: Metric) -> float:
    return scores.log_mae if metric is Metric.LOG_MAE else scores.mae_ms


def _describe(version: str, scores: Scores, metric: Metric) -> str:
    main = f"{metric.value} {error_of(scores, metric):.4g}"
    other = f"MAE {scores.mae_ms:.1f} ms" if metric is Metric.LOG_MAE else f"LOG_MAE {scores.log_mae:.4g}"
    return f"{version} {main} ({other})"


def promotion(paired: Paired, settings: GateSettings) -> GateDecision:
    """`paired.first` is the candidate, `paired.second` the active version."""
    candidate, active = paired.first, paired.second
    metric = settings.metric
    c, a = error_of(candidate, metric), error_of(active, metric)
    n = paired.labels
    if n < settings.min_labels:
        return GateDecision(
            Verdict.WAIT,
            f"candidate {paired.first_version}: {n} of {settings.min_labels} shared labels with "
            f"{paired.second_version}; no decision yet",
            n,
            c,
            a,
            math.nan,
        )
    limit = a * (1 + settings.promote_margin)
    both = (
        f"{_describe(paired.first_version, candidate, metric)} against "
        f"{_describe(paired.second_version, active, metric)} on the same {n} labels"
    )
    if c <= limit:
        return GateDecision(
            Verdict.PROMOTE,
            f"promote {paired.first_version}: {both}; within the limit {limit:.4g} "
            f"(active x (1 + {settings.promote_margin:g}))",
            n,
            c,
            a,
            limit,
        )
    return GateDecision(
        Verdict.REFUSE,
        f"refuse {paired.first_version}: {both}; above the limit {limit:.4g} "
        f"(active x (1 + {settings.promote_margin:g}))",
        n,
        c,
        a,
        limit,
    )


def rollback(paired: Paired, settings: GateSettings) -> GateDecision:
    """`paired.first` is the active version, `paired.second` the one active
    before it, still running in shadow."""
    active, previous = paired.first, paired.second
    metric = settings.metric
    a, p = error_of(active, metric), error_of(previous, metric)
    n = paired.labels
    if n < settings.min_labels:
        return GateDecision(
            Verdict.WAIT,
            f"active {paired.first_version}: {n} of {settings.min_labels} shared labels with "
            f"previous {paired.second_version}; no decision yet",
            n,
            a,
            p,
            math.nan,
        )
    limit = p * (1 + settings.rollback_margin)
    both = (
        f"{_describe(paired.first_version, active, metric)} against previous "
        f"{_describe(paired.second_version, previous, metric)} on the same {n} labels"
    )
    if a > limit:
        return GateDecision(
            Verdict.ROLL_BACK,
            f"roll back {paired.first_version} to {paired.second_version}: {both}; above the limit "
            f"{limit:.4g} (previous x (1 + {settings.rollback_margin:g}))",
            n,
            a,
            p,
            limit,
        )
    return GateDecision(
        Verdict.KEEP,
        f"keep {paired.first_version}: {both}; within the limit {limit:.4g} "
        f"(previous x (1 + {settings.rollback_margin:g}))",
        n,
        a,
        p,
        limit,
    )
