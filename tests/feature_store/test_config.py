from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.common.window import WindowLimits
from services.feature_store.config import FeatureStoreConfig, build, load, parser

SETTINGS = (
    "ACE_HOST",
    "ACE_FEATURE_STORE_PORT",
    "ACE_GRACE_S",
    "ACE_WINDOW_S",
    "ACE_WINDOW_MAX_POINTS",
    "ACE_MAX_BACKENDS",
    "ACE_MAX_POINTS_PER_REQUEST",
    "ACE_MAX_STREAMS",
    "ACE_HISTORY_DIR",
    "ACE_HISTORY_MAX_BYTES",
    "ACE_HISTORY_MAX_AGE_S",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings the machine running the tests may have set do not leak in."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_proto():
    config = load([])
    assert config.port == 50051
    assert config.limits == WindowLimits(span_s=300.0, max_points=256)
    assert config.max_backends == 10_000
    assert config.max_points_per_request == 10_000
    # Built in code, a config serves no metrics; the command line turns them on.
    assert config.metrics_port == 9451
    assert config == FeatureStoreConfig(log_format=config.log_format, log_level=config.log_level, metrics_port=9451)


def test_flags_set_every_bound():
    config = load(
        [
            "--port=0",
            "--window-s=60",
            "--window-max-points=16",
            "--max-backends=3",
            "--max-points-per-request=7",
            "--max-streams=2",
        ]
    )
    assert config.port == 0
    assert config.limits == WindowLimits(span_s=60.0, max_points=16)
    assert (config.max_backends, config.max_points_per_request, config.max_streams) == (3, 7, 2)


def test_environment_sets_a_value_and_a_flag_wins_over_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACE_WINDOW_S", "120")
    monkeypatch.setenv("ACE_FEATURE_STORE_PORT", "6000")
    assert load([]).window_s == 120.0
    assert load([]).port == 6000
    assert load(["--window-s", "30"]).window_s == 30.0


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--window-s", "0"),
        ("--window-s", "nan"),
        ("--window-max-points", "0"),
        ("--max-backends", "-1"),
        ("--max-points-per-request", "0"),
        ("--max-streams", "0"),
        ("--history-max-bytes", "1000"),
        ("--history-max-age-s", "0"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_flag(flag: str, value: str):
    args = parser().parse_args([f"{flag}={value}"])
    with pytest.raises(ConfigError, match=f"^{flag} "):
        build(args)


def test_load_ends_the_process_on_a_bad_value(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        load(["--max-backends=0"])
    assert exited.value.code == 2
    assert "--max-backends must be >= 1" in capsys.readouterr().err


def test_history_is_off_unless_a_directory_is_given(monkeypatch: pytest.MonkeyPatch):
    assert load([]).history_dir is None
    monkeypatch.setenv("ACE_HISTORY_DIR", "/var/lib/ace/history")
    monkeypatch.setenv("ACE_HISTORY_MAX_BYTES", str(64 << 20))
    config = load(["--history-max-age-s=3600"])
    assert str(config.history_dir) == "/var/lib/ace/history"
    assert (config.retention.max_bytes, config.retention.max_age_s) == (64 << 20, 3600.0)
