"""An ablation of issue 14's "precision where it matters", inside the bench
only: what a forecast other than the forest's mean would buy on the fleet's
breach episodes. The predictor serves the mean; nothing here is served.

Every variant learns the fleet's own earlier history with the trainer's
dataset, split and forest settings (services.trainer.train.fit), and is
streamed through the router's breakers on the later history as the ONNX
model is (the mean row is that model, in scikit-learn):

- the mean: the forest's average of log latency, as the trainer exports it;
- a quantile of the trees: the forest's spread read as a forecast
  distribution, whose upper quantile is an upper bound on the horizon's
  worst latency (a quantile regression forest's idea, on the same trees);
- a breach probability: a classifier forest with the same settings, trained
  on "a breach comes within the horizon", whose probability is compared with
  a cost ratio p* (open when p >= p*). The breaker compares milliseconds, so
  it sees threshold x p / p*.

"Calibrated" fits the cut-off of services.predictor.calibration (the lowest
score whose forecasts at or over it come true 80% of the time) on the
trainer's held-out quarter of the earlier history, which the forest did not
learn. The mean and the quantile are scaled as the predictor scales, only
ever down; for the classifier the cut-off picks p* from the fleet's record,
either way.

The label "slow when others are not" (this backend breaches while the
others' median does not) is counted as well: where it equals the plain
label on every row, a model of it is the same model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestClassifier

from bench.fleet import evaluate
from bench.fleet.evaluate import HORIZON_S, THRESHOLD_MS, Config, Floats, Source
from services.common.window import WindowLimits
from services.predictor.calibration import cutoff
from services.trainer import dataset, train
from services.trainer.train import TrainParams

QUANTILE = 0.9
COST_RATIOS = (0.3, 0.5, 0.7)

Rows = npt.NDArray[np.float32]  # feature vectors, as the forests take them
Score = Callable[[Rows], Floats]  # feature rows -> ms the breaker compares


class Scored:
    """A model for AceRouter (routers.Model) over a plain function."""

    def __init__(self, fn: Score, scale: float = 1.0) -> None:
        self.fn = fn
        self.scale = scale

    def score(self, vectors: Sequence[tuple[str, Sequence[float]]]) -> Floats:
        rows = np.asarray([v for _, v in vectors], dtype=np.float32)
        return np.asarray(self.fn(rows), dtype=np.float64) * self.scale


@dataclass(frozen=True)
class Learnt:
    """The variants' scores, learnt from one fleet's earlier history, and
    the held-out quarter they are calibrated on."""

    scores: dict[str, Score]
    held_x: Rows
    held_y: Floats
    breach_rows: int
    others_breach_rows: int  # breach rows where the others' median breached too


def learn(source: Source) -> Learnt:
    rows = dataset.build(source.points(), HORIZON_S, WindowLimits())
    params = TrainParams(horizon_s=HORIZON_S, threshold_ms=THRESHOLD_MS)
    fitted = train.fit(rows, params)
    split = fitted.split
    x = rows.X.astype(np.float32)
    breach = rows.y >= THRESHOLD_MS
    classifier = RandomForestClassifier(**train.forest_options(params)).fit(x[split.train], breach[split.train])
    forest, offset = fitted.forest, fitted.offset

    def mean(rows: Rows) -> Floats:
        return np.asarray(np.expm1(forest.predict(rows) + offset))

    def quantile(rows: Rows) -> Floats:
        trees = np.stack([tree.predict(rows) for tree in forest.estimators_])
        return np.asarray(np.expm1(np.quantile(trees, QUANTILE, axis=0) + offset))

    def probability(rows: Rows) -> Floats:
        p = classifier.predict_proba(rows)
        return np.asarray(p[:, 1] if p.shape[1] > 1 else np.zeros(len(rows)), dtype=np.float64)

    def cost_ratio(ratio: float) -> Score:
        return lambda rows: THRESHOLD_MS / ratio * probability(rows)

    scores: dict[str, Score] = {
        "the forest's mean (what the predictor serves)": mean,
        f"the trees' {QUANTILE:g} quantile": quantile,
    }
    for ratio in COST_RATIOS:
        scores[f"breach probability >= {ratio:g}"] = cost_ratio(ratio)
    return Learnt(scores, x[split.test], rows.y[split.test], int(breach.sum()), others_breach(rows.times, rows.y))


def others_breach(times: Floats, labels_ms: Floats, threshold_ms: float = THRESHOLD_MS) -> int:
    """Breach labels at whose time the other backends' median label breached too."""
    at: defaultdict[float, list[float]] = defaultdict(list)
    for t, y in zip(times.tolist(), labels_ms.tolist(), strict=True):
        at[t].append(y)
    return sum(
        1
        for t, y in zip(times.tolist(), labels_ms.tolist(), strict=True)
        if y >= threshold_ms and len(at[t]) > 1 and np.median(_without(at[t], y)) >= threshold_ms
    )


def _without(values: list[float], one: float) -> list[float]:
    rest = list(values)
    rest.remove(one)
    return rest


def configs(learnt: Learnt) -> list[Config]:
    """Each variant raw and calibrated on the held-out quarter (the
    classifier's calibrated rows are one: the cut-off replaces p*)."""
    out = []
    for name, fn in learnt.scores.items():
        out.append(_config(name, fn, 1.0))
        c = cutoff(fn(learnt.held_x), learnt.held_y, THRESHOLD_MS)
        scale = 1.0 if c is None or c <= 0 else THRESHOLD_MS / c
        if not name.startswith("breach probability"):
            # As the predictor calibrates: only ever reined in (calibration.fit_scale).
            out.append(_config(f"{name}, calibrated", fn, min(1.0, scale)))
        elif name.endswith(f"{COST_RATIOS[0]:g}"):
            # p* is what the cut-off picks, either way.
            out.append(_config("breach probability, p* calibrated", fn, scale))
    return out


def _config(name: str, fn: Score, scale: float) -> Config:
    return evaluate.forecast(name, Scored(fn, scale))
