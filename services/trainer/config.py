"""The trainer's settings: flags with ACE_* environment fallbacks, checked
once at start into a frozen TrainerConfig."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common import addresses, admin, config
from services.common.admin import REFUSE_ALL, AdminAuth
from services.common.config import require
from services.common.tls import PLAINTEXT, Tls
from services.common.window import WindowLimits
from services.trainer import watcher
from services.trainer.watcher import NO_RETRAIN, RetrainSettings


@dataclass(frozen=True)
class TrainerConfig:
    host: str = "[::]"
    port: int = config.DEFAULT_PORTS["trainer"]
    grace_s: float = 5.0
    log_format: str = ""
    log_level: str = "info"
    tls: Tls = PLAINTEXT
    # Prometheus metrics over HTTP; off unless set (the command line sets it).
    metrics_port: int = config.METRICS_OFF
    predictor_addr: str = f"localhost:{config.DEFAULT_PORTS['predictor']}"
    # Comma-separated host:port entries to publish to, each host standing for
    # every address it resolves to (a headless Service: every predictor
    # pod). Empty: publish to predictor_addr alone.
    predictor_publish_addrs: str = ""
    feature_store_addr: str = f"localhost:{config.DEFAULT_PORTS['feature_store']}"
    # Forecast horizon used when a request leaves horizon_s at 0, seconds.
    horizon_s: float = 300.0
    # Breach threshold used when a request leaves threshold_ms at 0.
    threshold_ms: float = 300.0
    # Must equal the feature store's window, or training and serving see
    # different windows.
    window_s: float = 300.0
    window_max_points: int = 256
    publish_timeout_s: float = 60.0
    # The only directory Train's csv_path may name files in (resolved, so
    # symlinks are followed before the check); None refuses csv_path.
    data_dir: Path | None = None
    # Train needs this token, and the trainer sends it when it publishes;
    # the default refuses Train and publishes with no token.
    admin: AdminAuth = REFUSE_ALL
    # Drift-triggered retraining (services.trainer.watcher); off by default.
    retrain: RetrainSettings = NO_RETRAIN
    # Feature-store trainings weight rows by the quality labels in their
    # horizon: 1 + w x (1 - mean quality). 0: quality labels are not used.
    quality_weight: float = 0.0

    @property
    def window_limits(self) -> WindowLimits:
        return WindowLimits(span_s=self.window_s, max_points=self.window_max_points)


def parser() -> argparse.ArgumentParser:
    p = config.service_parser("trainer", "Trains the latency model and publishes it to the predictor.")
    config.add_address(p, "predictor")
    config.add_address(p, "feature_store")
    config.option(
        p,
        "--predictor-publish-addrs",
        env="ACE_PREDICTOR_PUBLISH_ADDRS",
        cast=str,
        default="",
        help="comma-separated host:port of every predictor replica to publish to; a host resolving to several "
        "addresses (a headless Service) stands for each (empty: --predictor-addr alone)",
    )
    config.option(
        p, "--horizon-s", env="ACE_HORIZON_S", cast=float, default=300.0, help="default forecast horizon, seconds"
    )
    config.option(
        p,
        "--threshold-ms",
        env="ACE_THRESHOLD_MS",
        cast=float,
        default=300.0,
        help="default latency threshold for breach precision and recall, ms",
    )
    config.option(
        p,
        "--window-s",
        env="ACE_WINDOW_S",
        cast=float,
        default=300.0,
        help="feature window span (as the feature store)",
    )
    config.option(
        p,
        "--window-max-points",
        env="ACE_WINDOW_MAX_POINTS",
        cast=int,
        default=256,
        help="points a feature window holds (as the feature store)",
    )
    config.option(
        p,
        "--publish-timeout-s",
        env="ACE_PUBLISH_TIMEOUT_S",
        cast=float,
        default=60.0,
        help="deadline of one PublishModel call, seconds",
    )
    config.option(
        p,
        "--data-dir",
        env="ACE_DATA_DIR",
        cast=str,
        default="",
        help="directory Train's csv_path may read history files from; a path resolving outside it is refused "
        "(empty: csv_path is refused)",
    )
    admin.add_options(p)
    watcher.add_options(p)
    config.option(
        p,
        "--quality-weight",
        env="ACE_QUALITY_WEIGHT",
        cast=float,
        default=0.0,
        help="weight rows by the quality labels in their horizon, 1 + w x (1 - quality); feature-store "
        "trainings only (0: off)",
    )
    return p


def _data_dir(raw: str) -> Path | None:
    if not raw:
        return None
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise config.ConfigError(f"--data-dir: cannot resolve {raw!r}: {exc}") from exc
    require(path.is_dir(), f"--data-dir: {raw!r} is not a directory")
    return path


def _quality_weight(value: float) -> float:
    require(math.isfinite(value) and value >= 0, f"--quality-weight: must be a finite number >= 0, got {value!r}")
    return value


def _positive(name: str, value: float) -> None:
    require(math.isfinite(value) and value > 0, f"{name}: must be a finite number > 0, got {value!r}")


def build(args: argparse.Namespace) -> TrainerConfig:
    require(bool(args.predictor_addr), "--predictor-addr: must not be empty")
    require(bool(args.feature_store_addr), "--feature-store-addr: must not be empty")
    for entry in filter(None, (e.strip() for e in args.predictor_publish_addrs.split(","))):
        try:
            addresses.split(entry)
        except ValueError as exc:
            raise config.ConfigError(f"--predictor-publish-addrs: {exc}") from exc
    _positive("--horizon-s", args.horizon_s)
    _positive("--threshold-ms", args.threshold_ms)
    _positive("--window-s", args.window_s)
    require(args.window_max_points >= 1, f"--window-max-points: must be >= 1, got {args.window_max_points}")
    _positive("--publish-timeout-s", args.publish_timeout_s)
    return TrainerConfig(
        **config.shared(args),
        predictor_addr=args.predictor_addr,
        predictor_publish_addrs=args.predictor_publish_addrs,
        feature_store_addr=args.feature_store_addr,
        horizon_s=args.horizon_s,
        threshold_ms=args.threshold_ms,
        window_s=args.window_s,
        window_max_points=args.window_max_points,
        publish_timeout_s=args.publish_timeout_s,
        data_dir=_data_dir(args.data_dir),
        admin=admin.from_args(args),
        retrain=watcher.settings_from(args),
        quality_weight=_quality_weight(args.quality_weight),
    )


def load(argv: Sequence[str] | None = None) -> TrainerConfig:
    """Parses flags and environment; a bad value ends the process naming it."""
    return config.parse(parser(), argv, build)
