from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common import synthetic
from services.common.window import WindowLimits
from services.trainer import dataset, train
from services.trainer.dataset import Dataset
from services.trainer.train import TrainedModel, TrainParams
from tests.trainer.fake_predictor import FakePredictor, serve

FIXED_NOW = 1_790_000_000.0  # 2026-09-21T...Z, so versions are predictable


@pytest.fixture(scope="session")
def default_dataset() -> Dataset:
    """The trainer's default history: seed 1, 6 backends, 6 h every 10 s."""
    return dataset.build(synthetic.random_history(1).points, 300.0, WindowLimits())


@pytest.fixture(scope="session")
def default_model(default_dataset: Dataset) -> TrainedModel:
    return train.train(default_dataset, TrainParams(horizon_s=300.0, threshold_ms=300.0), now=lambda: FIXED_NOW)


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    return dataset.build(synthetic.random_history(3, 3, 5400.0).points, 300.0, WindowLimits())


@pytest.fixture
def fake_predictor() -> Iterator[tuple[FakePredictor, int]]:
    fake = FakePredictor()
    running = serve(fake)
    yield fake, running.port
    running.stop(0)
