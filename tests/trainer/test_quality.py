"""Quality labels in training: which rows they weight, and what the weights
do to the forest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.common import synthetic
from services.common.window import WindowLimits
from services.trainer import dataset, job, train
from services.trainer.dataset import QualityBucket
from services.trainer.job import FeatureStoreSource, PublishOutcome, Trainer
from tests.trainer.quality_synthetic import quality_buckets

T0 = synthetic.EPOCH


def tiny(times: list[float], backends: list[str], horizon_s: float = 30.0) -> dataset.Dataset:
    n = len(times)
    return dataset.Dataset(
        X=np.zeros((n, 1)),
        y=np.zeros(n),
        times=np.asarray(times, dtype=np.float64),
        backend_ids=np.asarray(backends),
        current_latency_ms=np.zeros(n),
        horizon_s=horizon_s,
        unlabelled=0,
    )


def test_horizon_quality_is_the_mean_over_the_rows_own_horizon_and_backend():
    data = tiny([T0, T0 + 10, T0 + 100, T0], ["a", "a", "a", "b"])
    buckets = [
        QualityBucket("a", T0, 4, 4.0),  # at the row's own time: not in (t, t + 30]
        QualityBucket("a", T0 + 10, 2, 1.0),
        QualityBucket("a", T0 + 30, 1, 0.0),
        QualityBucket("a", T0 + 30, 1, 1.0),  # the same bucket sent twice: they add up
        QualityBucket("c", T0 + 10, 5, 0.0),  # another backend
    ]
    got = dataset.horizon_quality(data, buckets)
    assert got[0] == pytest.approx((1.0 + 0.0 + 1.0) / 4)
    assert got[1] == pytest.approx(0.5)  # (T0 + 10, T0 + 40]: the two at T0 + 30
    assert math.isnan(got[2]) and math.isnan(got[3])


def test_rows_count_more_the_further_quality_fell_and_1_without_labels():
    data = tiny([T0, T0 + 100], ["a", "a"])
    weighted = dataset.with_quality(data, [QualityBucket("a", T0 + 10, 2, 0.5)], weight=4.0)
    assert weighted.weights is not None
    assert weighted.weights.tolist() == [1.0 + 4.0 * 0.75, 1.0]
    assert dataset.weighted_rows(weighted) == 1
    with pytest.raises(ValueError, match="weight"):
        dataset.with_quality(data, [], weight=-1.0)


@pytest.mark.slow
def test_weights_raise_the_forecast_where_quality_fell():
    # Quality falls from 60% utilisation, latency breaches near 80%: the rows
    # ahead of a breach are weighted up, and the forest forecasts them higher.
    history = synthetic.random_history(1, duration_s=3 * 3600.0)
    plain = dataset.build(history.points, 300.0, WindowLimits())
    buckets = quality_buckets(history, 1)
    weighted = dataset.with_quality(plain, buckets, weight=5.0)
    params = train.TrainParams(horizon_s=300.0, threshold_ms=300.0)
    a, b = train.fit(plain, params), train.fit(weighted, params)
    test = a.split.test
    fell = dataset.horizon_quality(plain, buckets)[test] < 0.8
    assert fell.sum() > 20
    assert train.predict(b, plain.X[test])[fell].mean() > train.predict(a, plain.X[test])[fell].mean()


def test_the_trainer_weights_a_feature_store_training_when_asked():
    history = synthetic.random_history(3, 3, 5400.0)
    asked: list[object] = []

    def quality(source: job.Source) -> list[QualityBucket]:
        asked.append(source)
        return quality_buckets(history, 3)

    trainer = Trainer(
        limits=WindowLimits(),
        publisher=lambda model: PublishOutcome(False),
        load=lambda source: history.points,
        quality=quality,
        quality_weight=2.0,
    )
    made = job.make_job(
        FeatureStoreSource(),
        publish=False,
        n_estimators=5,
        max_depth=4,
        horizon_s=0,
        threshold_ms=0,
        seed=0,
        defaults=job.Defaults(horizon_s=300.0, threshold_ms=300.0),
    )
    steps = {p.stage: p.message for p in trainer.run(made)}
    assert asked == [FeatureStoreSource()]
    assert "rows weighted up by quality labels" in steps[job.Stage.FEATURES]
