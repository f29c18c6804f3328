from __future__ import annotations

from pathlib import Path

import pytest

from services.common.drift import Direction
from services.predictor import config
from services.predictor.gate import GateSettings, Metric


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACE_MODEL_DIR", "ACE_MAX_MODEL_BYTES", "ACE_PREDICTOR_PORT"):
        monkeypatch.delenv(name, raising=False)
    cfg = config.load([])
    assert cfg.port == 50052
    assert cfg.model_dir == Path(".run/models")
    assert cfg.max_model_bytes == 64 * 1024 * 1024


def test_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACE_MODEL_DIR", "/data/models")
    monkeypatch.setenv("ACE_MAX_MODEL_BYTES", "1000")
    cfg = config.load(["--port", "0", "--max-model-bytes", "2000"])
    assert cfg.port == 0
    assert cfg.model_dir == Path("/data/models")
    assert cfg.max_model_bytes == 2000


def test_bad_value_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.load(["--max-model-bytes", "0"])
    assert "--max-model-bytes: must be > 0" in capsys.readouterr().err


def test_the_learning_loop_is_off_by_default_and_its_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACE_FEATURE_STORE_ADDR", raising=False)
    assert config.load([]).feature_store_addr == ""
    monkeypatch.setenv("ACE_GATE_MIN_LABELS", "50")
    cfg = config.load(
        ["--feature-store-addr", "fs:1", "--gate-metric", "mae_ms", "--promote-margin", "0", "--drift-threshold", "3"]
    )
    assert cfg.feature_store_addr == "fs:1"
    assert cfg.loop.gate == GateSettings(metric=Metric.MAE_MS, promote_margin=0.0, rollback_margin=0.1, min_labels=50)
    assert cfg.loop.error_drift.threshold == 3.0 and cfg.loop.error_drift.direction is Direction.UP
    assert cfg.loop.feature_drift.direction is Direction.BOTH


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--gate-metric", "rmse"], "--gate-metric"),
        (["--drift-alpha", "0"], "--drift-alpha"),
        (["--gate-min-labels", "0"], "--gate-min-labels"),
        (["--score-interval-s", "nan"], "--score-interval-s"),
        (["--promote-margin", "-0.1"], "--promote-margin"),
    ],
)
def test_bad_loop_values_name_the_flag(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.load(argv)
    assert flag in capsys.readouterr().err
