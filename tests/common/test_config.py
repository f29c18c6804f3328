import pytest

from services.common import config
from services.router.config import load as load_router


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--port", "70000"),
        ("--port", "-1"),
        ("--grace-s", "-1"),
        ("--grace-s", "nan"),
        ("--log-format", "xml"),
        ("--log-level", "loud"),
        ("--metrics-port", "-2"),
        ("--metrics-port", "70000"),
        ("--metrics-port", "50053"),
    ],
)
def test_shared_options_are_checked_for_every_service(flag, value):
    args = config.service_parser("router", "test").parse_args([f"{flag}={value}"])
    with pytest.raises(config.ConfigError, match=f"^{flag} "):
        config.check_shared(args)


def test_flags_win_over_variables_which_win_over_defaults(monkeypatch):
    assert load_router([]).policy.threshold_ms == 300
    monkeypatch.setenv("ACE_THRESHOLD_MS", "250")
    monkeypatch.setenv("ACE_LOG_LEVEL", "WARNING")
    assert load_router([]).policy.threshold_ms == 250
    assert load_router([]).log_level == "warning"
    assert load_router(["--threshold-ms", "200"]).policy.threshold_ms == 200


def test_a_bad_variable_or_value_ends_the_process_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("ACE_THRESHOLD_MS", "fast")
    with pytest.raises(SystemExit) as exited:
        load_router([])
    assert exited.value.code == 2
    assert "ACE_THRESHOLD_MS='fast'" in capsys.readouterr().err
    monkeypatch.delenv("ACE_THRESHOLD_MS")
    with pytest.raises(SystemExit):
        load_router(["--hysteresis", "1.5"])
    assert "--hysteresis must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--error-penalty", "-1"], "--error-penalty must be >= 0 (0: off)"),
        (["--error-penalty", "inf"], "--error-penalty must be >= 0 (0: off)"),
        (["--error-decay-s", "0"], "--error-decay-s must be > 0"),
        (["--warm-after-s", "nan"], "--warm-after-s must be >= 0"),
        (["--probe-after-s", "0"], "--probe-after-s must be > 0"),
        (["--probe-after-s", "inf"], "--probe-after-s must be > 0"),
    ],
)
def test_failure_weighting_warmth_and_the_probe_bound_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_router(argv)
    assert message in capsys.readouterr().err


def test_failure_weighting_reaches_the_policy(monkeypatch):
    monkeypatch.setenv("ACE_ERROR_DECAY_S", "30")
    policy = load_router(["--error-penalty", "0"]).policy
    assert (policy.error_penalty, policy.error_decay_s) == (0, 30)


def test_the_metrics_port_has_a_default_per_service_and_follows_a_test_port(monkeypatch):
    assert load_router([]).metrics_port == config.DEFAULT_METRICS_PORTS["router"]
    # Servers started on port 0 (tests) must never collide on a fixed metrics port.
    assert load_router(["--port", "0"]).metrics_port == 0
    assert load_router(["--port", "0", "--metrics-port", "9999"]).metrics_port == 9999
    assert load_router(["--metrics-port", str(config.METRICS_OFF)]).metrics_port == config.METRICS_OFF
    monkeypatch.setenv("ACE_ROUTER_METRICS_PORT", "9100")
    assert load_router(["--port", "0"]).metrics_port == 9100


def test_warmth_and_the_probe_bound_reach_the_policy(monkeypatch):
    assert (load_router([]).policy.warm_after_s, load_router([]).policy.probe_after_s) == (40, 300)
    monkeypatch.setenv("ACE_PROBE_AFTER_S", "120")
    policy = load_router(["--warm-after-s", "90"]).policy
    assert (policy.warm_after_s, policy.probe_after_s) == (90, 120)


def test_the_observed_floor_is_on_unless_switched_off(monkeypatch):
    assert load_router([]).policy.observed_floor
    assert not load_router(["--observed-floor", "off"]).policy.observed_floor
    monkeypatch.setenv("ACE_OBSERVED_FLOOR", "off")
    assert not load_router([]).policy.observed_floor
