from __future__ import annotations

import pytest

from services.trainer import config
from services.trainer.config import TrainerConfig


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (
        "ACE_TRAINER_PORT",
        "ACE_PREDICTOR_ADDR",
        "ACE_PREDICTOR_PUBLISH_ADDRS",
        "ACE_FEATURE_STORE_ADDR",
        "ACE_HORIZON_S",
        "ACE_THRESHOLD_MS",
        "ACE_WINDOW_S",
        "ACE_WINDOW_MAX_POINTS",
        "ACE_PUBLISH_TIMEOUT_S",
        "ACE_DATA_DIR",
        "ACE_HOST",
        "ACE_GRACE_S",
        "ACE_LOG_FORMAT",
        "ACE_LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    assert config.load([]) == TrainerConfig(metrics_port=9454)
    assert TrainerConfig().port == 50054
    assert TrainerConfig().predictor_addr == "localhost:50052"


def test_environment_then_flags(monkeypatch):
    monkeypatch.setenv("ACE_HORIZON_S", "120")
    monkeypatch.setenv("ACE_PREDICTOR_ADDR", "predictor:1")
    monkeypatch.setenv("ACE_WINDOW_MAX_POINTS", "64")
    cfg = config.load(["--horizon-s", "60", "--threshold-ms", "400", "--publish-timeout-s", "5", "--port", "0"])
    assert cfg.horizon_s == 60.0
    assert cfg.predictor_addr == "predictor:1"
    assert cfg.threshold_ms == 400.0
    assert cfg.publish_timeout_s == 5.0
    assert cfg.port == 0
    assert cfg.window_limits.max_points == 64
    assert cfg.window_limits.span_s == 300.0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--horizon-s", "0"], "--horizon-s"),
        (["--threshold-ms", "-1"], "--threshold-ms"),
        (["--window-s", "nan"], "--window-s"),
        (["--window-max-points", "0"], "--window-max-points"),
        (["--publish-timeout-s", "0"], "--publish-timeout-s"),
        (["--port", "70000"], "--port"),
        (["--predictor-addr", ""], "--predictor-addr"),
        (["--feature-store-addr", ""], "--feature-store-addr"),
        (["--predictor-publish-addrs", "predictor-pods"], "--predictor-publish-addrs"),
        (["--data-dir", "/nonexistent/ace-data"], "--data-dir"),
        (["--data-dir", "/dev/null"], "--data-dir"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_values_stop_with_the_setting_named(argv, named, capsys):
    with pytest.raises(SystemExit):
        config.load(argv)
    assert named in capsys.readouterr().err


def test_a_bad_environment_value_is_named(monkeypatch, capsys):
    monkeypatch.setenv("ACE_HORIZON_S", "soon")
    with pytest.raises(SystemExit):
        config.load([])
    assert "ACE_HORIZON_S" in capsys.readouterr().err


def test_publish_addresses_and_the_feature_store_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACE_PREDICTOR_PUBLISH_ADDRS", "predictor-pods:50052")
    monkeypatch.setenv("ACE_FEATURE_STORE_ADDR", "feature-store:50051")
    cfg = config.load([])
    assert (cfg.predictor_publish_addrs, cfg.feature_store_addr) == ("predictor-pods:50052", "feature-store:50051")


def test_the_data_dir_is_resolved_once_at_start(monkeypatch, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert TrainerConfig().data_dir is None
    monkeypatch.setenv("ACE_DATA_DIR", str(tmp_path / "alias"))
    assert config.load([]).data_dir == (tmp_path / "real").resolve()
