"""The predictor's settings, from flags and ACE_* variables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.common import admin, config
from services.common.admin import REFUSE_ALL, AdminAuth
from services.common.config import require
from services.common.drift import Direction, PageHinkleySettings
from services.common.tls import PLAINTEXT, Tls
from services.predictor.gate import GateSettings, Metric
from services.predictor.loop import LoopSettings
from services.predictor.trust import TrustSettings

MIB = 1024 * 1024


@dataclass(frozen=True)
class PredictorConfig:
    host: str = "[::]"
    port: int = config.DEFAULT_PORTS["predictor"]
    grace_s: float = 5.0
    log_format: str = ""
    log_level: str = "info"
    tls: Tls = PLAINTEXT
    # Prometheus metrics over HTTP; off unless set (the command line sets it).
    metrics_port: int = config.METRICS_OFF
    model_dir: Path = Path(".run/models")
    max_model_bytes: int = 64 * MIB
    # PublishModel and Rollback need this token; the default refuses them.
    admin: AdminAuth = REFUSE_ALL
    # The learning loop's truth comes from this feature store; empty: the
    # loop is off (nothing is recorded, scored or promoted).
    feature_store_addr: str = ""
    score_interval_s: float = 10.0  # wall clock between evaluation ticks
    score_window_s: float = 3600.0  # event time the scores cover
    score_settle_s: float = 0.0  # event time late points may still arrive after a horizon
    breach_threshold_ms: float = 300.0
    loop: LoopSettings = field(default_factory=LoopSettings)


def parser() -> argparse.ArgumentParser:
    p = config.service_parser("predictor", "Serves the active latency model and manages model versions.")
    config.option(
        p, "--model-dir", env="ACE_MODEL_DIR", cast=Path, default=Path(".run/models"), help="where versions are kept"
    )
    config.option(
        p,
        "--max-model-bytes",
        env="ACE_MAX_MODEL_BYTES",
        cast=int,
        default=64 * MIB,
        help="largest ONNX model PublishModel accepts, in bytes",
    )
    admin.add_options(p)
    _loop_options(p)
    return p


def _loop_options(p: argparse.ArgumentParser) -> None:
    config.option(
        p,
        "--feature-store-addr",
        env="ACE_FEATURE_STORE_ADDR",
        cast=str,
        default="",
        help="feature store to read the truth from; turns the learning loop on (empty: off)",
    )
    floats = (
        ("--score-interval-s", 10.0, "wall-clock seconds between evaluation ticks"),
        ("--score-window-s", 3600.0, "event time the scores cover, seconds before the newest label (0: all kept)"),
        ("--score-settle-s", 0.0, "event time late points may still arrive after a horizon ends, seconds"),
        ("--breach-threshold-ms", 300.0, "latency from which a forecast or label counts as a breach"),
        ("--promote-margin", 0.02, "a candidate may be this much worse (relative) than the active version"),
        ("--rollback-margin", 0.10, "the active version must be this much worse than the previous one to roll back"),
        ("--drift-delta", 0.05, "change of the mean absolute log error the drift detector tolerates"),
        ("--drift-threshold", 5.0, "Page-Hinkley lambda of the error drift detector"),
        ("--drift-alpha", 1.0, "forgetting factor of the drift detectors, in (0, 1]; 1: none"),
        ("--feature-drift-delta", 0.1, "change of a standardised feature its drift detector tolerates"),
        ("--feature-drift-threshold", 20.0, "Page-Hinkley lambda of the feature drift detectors"),
        ("--trust-min-precision", 0.5, "breach precision a version needs on this fleet's labels to drive breakers"),
        ("--trust-min-recall", 0.5, "breach recall a version needs on this fleet's labels to drive breakers"),
        ("--trust-hysteresis", 0.2, "a proven version loses its trust only below the bars x (1 - this)"),
    )
    for flag, default, help in floats:
        env = "ACE_" + flag.removeprefix("--").replace("-", "_").upper()
        config.option(p, flag, env=env, cast=float, default=default, help=help)
    config.option(p, "--gate-metric", env="ACE_GATE_METRIC", cast=str, default="log_mae", help="log_mae or mae_ms")
    config.option(
        p,
        "--calibrate",
        env="ACE_CALIBRATE",
        cast=str,
        default="on",
        help="on: scale each version's forecasts to the cut-off fitted on this fleet's labels; off: serve them raw",
    )
    config.option(
        p,
        "--trust-gate",
        env="ACE_TRUST_GATE",
        cast=str,
        default="on",
        help="on: a version drives breakers only once proven on this fleet's labels; off: every active version does",
    )
    ints = (
        ("--gate-min-labels", 200, "shared labels before the gate decides"),
        ("--trust-min-labels", 200, "labels a version needs before the trust gate may pass it"),
        ("--trust-min-breaches", 20, "breach labels among them before the trust gate may pass it"),
        ("--drift-min-samples", 30, "values a drift detector needs after a reset before it may fire"),
        ("--shadow-queue", 64, "Predict calls waiting for the shadow worker; beyond it they are dropped for shadows"),
    )
    for flag, default, help in ints:
        env = "ACE_" + flag.removeprefix("--").replace("-", "_").upper()
        config.option(p, flag, env=env, cast=int, default=default, help=help)


def _loop_settings(args: argparse.Namespace) -> LoopSettings:
    for name in ("score_interval_s", "breach_threshold_ms", "drift_threshold", "feature_drift_threshold"):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value > 0, f"--{name.replace('_', '-')}: must be finite and > 0, got {value!r}"
        )
    for name in (
        "score_window_s",
        "score_settle_s",
        "promote_margin",
        "rollback_margin",
        "drift_delta",
        "feature_drift_delta",
    ):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value >= 0, f"--{name.replace('_', '-')}: must be finite and >= 0, got {value!r}"
        )
    require(0 < args.drift_alpha <= 1, f"--drift-alpha: must be in (0, 1], got {args.drift_alpha!r}")
    metrics = {"log_mae": Metric.LOG_MAE, "mae_ms": Metric.MAE_MS}
    require(args.gate_metric in metrics, f"--gate-metric: must be log_mae or mae_ms, got {args.gate_metric!r}")
    require(args.trust_gate in ("on", "off"), f"--trust-gate: must be on or off, got {args.trust_gate!r}")
    require(args.calibrate in ("on", "off"), f"--calibrate: must be on or off, got {args.calibrate!r}")
    for name in ("trust_min_precision", "trust_min_recall", "trust_hysteresis"):
        value = getattr(args, name)
        require(0 <= value <= 1, f"--{name.replace('_', '-')}: must be in [0, 1], got {value!r}")
    for name in ("gate_min_labels", "drift_min_samples", "shadow_queue", "trust_min_labels", "trust_min_breaches"):
        value = getattr(args, name)
        require(value >= 1, f"--{name.replace('_', '-')}: must be >= 1, got {value!r}")
    return LoopSettings(
        gate=GateSettings(
            metric=metrics[args.gate_metric],
            promote_margin=args.promote_margin,
            rollback_margin=args.rollback_margin,
            min_labels=args.gate_min_labels,
        ),
        error_drift=PageHinkleySettings(
            delta=args.drift_delta,
            threshold=args.drift_threshold,
            alpha=args.drift_alpha,
            min_samples=args.drift_min_samples,
            direction=Direction.UP,
        ),
        feature_drift=PageHinkleySettings(
            delta=args.feature_drift_delta,
            threshold=args.feature_drift_threshold,
            alpha=args.drift_alpha,
            min_samples=args.drift_min_samples,
            direction=Direction.BOTH,
        ),
        shadow_queue=args.shadow_queue,
        calibrate=args.calibrate == "on",
        trust=TrustSettings(
            enabled=args.trust_gate == "on",
            min_labels=args.trust_min_labels,
            min_breaches=args.trust_min_breaches,
            min_precision=args.trust_min_precision,
            min_recall=args.trust_min_recall,
            hysteresis=args.trust_hysteresis,
        ),
    )


def build(args: argparse.Namespace) -> PredictorConfig:
    config.require(args.max_model_bytes > 0, f"--max-model-bytes: must be > 0, got {args.max_model_bytes}")
    return PredictorConfig(
        **config.shared(args),
        model_dir=args.model_dir,
        max_model_bytes=args.max_model_bytes,
        admin=admin.from_args(args),
        feature_store_addr=args.feature_store_addr,
        score_interval_s=args.score_interval_s,
        score_window_s=args.score_window_s,
        score_settle_s=args.score_settle_s,
        breach_threshold_ms=args.breach_threshold_ms,
        loop=_loop_settings(args),
    )


def load(argv: Sequence[str] | None = None) -> PredictorConfig:
    return config.parse(parser(), argv, build)
