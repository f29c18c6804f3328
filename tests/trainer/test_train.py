from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import onnxruntime
import pytest

from services.common import features
from services.common.errors import FailedPrecondition
from services.trainer import train
from services.trainer.dataset import Dataset
from services.trainer.train import TrainedModel, TrainParams
from tests.trainer.conftest import FIXED_NOW


def test_split_holds_out_the_last_quarter_and_purges_rows_whose_horizon_crosses_the_cut():
    times = np.repeat(np.arange(0.0, 4000.0, 10.0), 3)  # three backends, shuffled below
    shuffled = np.random.default_rng(2).permutation(times)
    split = train.temporal_split(shuffled, horizon_s=300.0)
    train_t, test_t = shuffled[split.train], shuffled[split.test]

    assert split.cut == pytest.approx(np.quantile(times, 0.75))
    assert set(split.train.tolist()).isdisjoint(split.test.tolist())
    assert test_t.min() >= split.cut
    assert (train_t + 300.0 < split.cut).all()
    # Exactly the rows with a horizon ending at or after the cut are left out.
    purged = (shuffled < split.cut) & (shuffled + 300.0 >= split.cut)
    assert purged.sum() == 30 * 3
    assert len(split.train) + len(split.test) + purged.sum() == len(times)
    assert len(split.test) == (shuffled >= split.cut).sum()
    # Never shuffled across time: both parts come out in event-time order.
    assert (np.diff(train_t) >= 0).all()
    assert (np.diff(test_t) >= 0).all()


def test_default_training_gives_finite_metrics_and_a_faithful_export(default_model: TrainedModel):
    m = default_model.metrics
    assert m.train_rows > 9000
    assert m.test_rows > 3000
    for value in m.as_map().values():
        assert math.isfinite(value)
    assert 0 <= m.breach_precision <= 1
    assert 0 <= m.breach_recall <= 1
    assert m.onnx_max_abs_diff_ms < 1e-3
    assert m.threshold_ms == 300.0
    assert m.horizon_s == 300.0


def test_default_training_beats_persistence(default_model: TrainedModel):
    """On the default history (seed 1, 6 backends, 6 h). On 2 h histories the
    forest often loses to persistence: the training period holds only a few
    spikes, so the calm rows just before a spike onset (which no feature can
    foresee, yet whose label is 5000 ms) make up many of its high leaves."""
    m = default_model.metrics
    assert m.mae_ms < 0.85 * m.persistence_mae_ms
    assert m.r2 > 0.5
    assert m.breach_recall > 0.5
    assert m.breach_precision > 0.5


def test_onnx_bytes_load_and_reproduce_the_reference_rows(default_model: TrainedModel):
    session = onnxruntime.InferenceSession(default_model.onnx_bytes, providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "features"
    assert given.type == "tensor(float)"
    assert given.shape[1] == features.N_FEATURES
    (out,) = session.get_outputs()
    assert out.type == "tensor(float)"

    inputs = default_model.reference_inputs
    assert inputs.shape == (train.REFERENCE_ROWS, features.N_FEATURES)
    # Sent as doubles, each exact in float32: the predictor's cast loses nothing.
    np.testing.assert_array_equal(inputs.astype(np.float32).astype(np.float64), inputs)
    (predicted,) = session.run(None, {"features": inputs.astype(np.float32)})
    np.testing.assert_allclose(predicted.reshape(-1), default_model.reference_outputs, atol=1e-9, rtol=0)


def test_metadata_describes_the_model(default_model: TrainedModel, default_dataset: Dataset):
    assert default_model.sha256 == hashlib.sha256(default_model.onnx_bytes).hexdigest()
    assert default_model.size_bytes == len(default_model.onnx_bytes)
    assert re.fullmatch(r"rf-20260921T\d{6}-[0-9a-f]{8}", default_model.version)
    assert default_model.version.endswith(default_model.sha256[:8])
    assert default_model.trained_at == FIXED_NOW
    assert default_model.schema_version == features.SCHEMA_VERSION
    assert default_model.feature_names == features.FEATURE_NAMES
    assert default_model.reference_tolerance_ms == 0.01
    assert set(default_model.feature_importances) == set(features.FEATURE_NAMES)
    assert sum(default_model.feature_importances.values()) == pytest.approx(1.0)
    assert len(default_model.feature_means) == len(default_model.feature_stds) == features.N_FEATURES
    # The reference rows are held-out rows spread from the start to the end
    # of the held-out period.
    split = train.temporal_split(default_dataset.times, default_dataset.horizon_s)
    held_out = default_dataset.X[split.test].astype(np.float32)
    first, last = held_out[0], held_out[-1]
    np.testing.assert_array_equal(default_model.reference_inputs[0], first)
    np.testing.assert_array_equal(default_model.reference_inputs[-1], last)
    means = default_dataset.X[split.train].mean(axis=0)
    np.testing.assert_allclose(default_model.feature_means, means)


def test_the_same_data_and_seed_give_the_same_bytes(small_dataset: Dataset):
    params = TrainParams(horizon_s=300.0, threshold_ms=300.0, n_estimators=8, seed=3)
    a = train.train(small_dataset, params, now=lambda: FIXED_NOW)
    b = train.train(small_dataset, params, now=lambda: FIXED_NOW)
    assert a.sha256 == b.sha256
    assert a.version == b.version
    c = train.train(small_dataset, TrainParams(horizon_s=300.0, threshold_ms=300.0, n_estimators=8, seed=4))
    assert c.sha256 != a.sha256


def test_too_few_labelled_rows_is_a_failed_precondition(small_dataset: Dataset):
    tiny = Dataset(
        X=small_dataset.X[:99],
        y=small_dataset.y[:99],
        times=small_dataset.times[:99],
        backend_ids=small_dataset.backend_ids[:99],
        current_latency_ms=small_dataset.current_latency_ms[:99],
        horizon_s=300.0,
        unlabelled=0,
    )
    with pytest.raises(FailedPrecondition, match="only 99 rows"):
        train.fit(tiny, TrainParams(horizon_s=300.0, threshold_ms=300.0))


def test_a_horizon_that_purges_every_training_row_is_a_failed_precondition(small_dataset: Dataset):
    # Rows span 85 min and the cut falls about 64 min in: no row's 70 min
    # horizon ends before it.
    long = Dataset(**{**vars(small_dataset), "horizon_s": 4200.0})
    with pytest.raises(FailedPrecondition, match="0 training and"):
        train.fit(long, TrainParams(horizon_s=4200.0, threshold_ms=300.0))


def test_breach_scores_define_zero_over_zero_as_zero():
    none = np.zeros(4, dtype=bool)
    some = np.array([True, False, True, False])
    assert train.precision(none, some) == 0.0
    assert train.recall(some, none) == 0.0
    assert train.precision(some, np.array([True, True, False, False])) == 0.5
    assert train.recall(some, np.array([True, True, False, False])) == 0.5


def test_r_squared_of_a_constant_label_is_zero():
    assert train.r_squared(np.full(5, 3.0), np.arange(5.0)) == 0.0
    assert train.r_squared(np.arange(5.0), np.arange(5.0)) == 1.0
