"""Synthetic quality labels whose fall comes before the latency breach, and
the measurement docs/model.md quotes: held-out breach precision and recall of
the forest trained with and without quality weights.

The synthetic backends are queues (services.common.synthetic): latency
crosses 300 ms at about 77-83% utilisation. Here the quality score of the
requests starts falling at 60%, as a model server's answers degrade (shorter
generations, fallbacks) before its queue shows it. Run:

    .venv/bin/python -m tests.trainer.quality_synthetic
"""

from __future__ import annotations

import sys

import numpy as np

from services.common import synthetic
from services.common.window import WindowLimits
from services.trainer import dataset, train
from services.trainer.dataset import QualityBucket

FALL_FROM = 0.6  # utilisation at which quality starts falling
SLOPE = 2.5  # quality lost per unit of utilisation above it
PER_BUCKET = 10  # quality scores reported per backend and 10 s


def quality_buckets(history: synthetic.History, seed: int) -> list[QualityBucket]:
    rng = np.random.default_rng(seed)
    capacity = {b.backend_id: b.capacity_rps for b in history.backends}
    out = []
    for p in history.points:
        util = p.load / capacity[p.backend_id]
        mean = 1.0 - SLOPE * max(util - FALL_FROM, 0.0)
        scores = np.clip(rng.normal(mean, 0.05, PER_BUCKET), 0.0, 1.0)
        out.append(QualityBucket(p.backend_id, p.observed_at, PER_BUCKET, float(scores.sum())))
    return out


def measure(seed: int, weight: float, hours: float = 6.0) -> dict[str, float]:
    history = synthetic.random_history(seed, duration_s=hours * 3600.0)
    data = dataset.build(history.points, 300.0, WindowLimits())
    if weight:
        data = dataset.with_quality(data, quality_buckets(history, seed), weight)
    params = train.TrainParams(horizon_s=300.0, threshold_ms=300.0)
    fitted = train.fit(data, params)
    test = fitted.split.test
    predicted = train.predict(fitted, data.X[test])
    actual = data.y[test]
    flagged, breached = predicted >= 300.0, actual >= 300.0
    return {
        "mae_ms": float(np.mean(np.abs(predicted - actual))),
        "precision": train.precision(flagged, breached),
        "recall": train.recall(flagged, breached),
    }


def main(argv: list[str]) -> None:
    seeds = [int(a) for a in argv] or [1, 2, 3, 4, 5, 6, 7, 8]
    for weight in (0.0, 2.0, 5.0, 10.0):
        rows = [measure(seed, weight) for seed in seeds]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(
            f"weight {weight:>4g}: MAE {mean['mae_ms']:.1f} ms, precision {mean['precision']:.3f}, "
            f"recall {mean['recall']:.3f}  (seeds {seeds})"
        )
        for seed, r in zip(seeds, rows, strict=True):
            print(f"    seed {seed}: MAE {r['mae_ms']:.1f} precision {r['precision']:.3f} recall {r['recall']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
