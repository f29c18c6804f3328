from __future__ import annotations

from pathlib import Path

import pytest

from services.predictor import config


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
