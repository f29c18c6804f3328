from __future__ import annotations

import pytest

from tests.predictor import models


@pytest.fixture(scope="session")
def onnx_a() -> bytes:
    return models.onnx_model(seed=0)


@pytest.fixture(scope="session")
def onnx_b() -> bytes:
    return models.onnx_model(seed=1)
