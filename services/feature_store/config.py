"""The feature store's settings: flags, ACE_* variables, defaults."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common import config
from services.common.config import option, require
from services.common.tls import PLAINTEXT, Tls
from services.common.window import WindowLimits
from services.feature_store.history import Retention


@dataclass(frozen=True)
class FeatureStoreConfig:
    host: str = "[::]"
    port: int = config.DEFAULT_PORTS["feature_store"]
    grace_s: float = 5.0
    log_format: str = ""  # "" picks by terminal
    log_level: str = "info"
    tls: Tls = PLAINTEXT
    # Prometheus metrics over HTTP; off unless set (the command line sets it).
    metrics_port: int = config.METRICS_OFF
    window_s: float = 300.0
    window_max_points: int = 256
    max_backends: int = 10_000
    # Points in one Ingest request; also the most rejections one IngestStream may collect.
    max_points_per_request: int = 10_000
    # Concurrent WatchFeatures and IngestStream calls. Each holds a worker
    # thread for as long as it is open, so they are capped below the pool
    # size: open streams can never starve Ingest and GetFeatures.
    max_streams: int = 32
    # Where every accepted point is appended for the trainer; None keeps no
    # history (ReadHistory answers FAILED_PRECONDITION).
    history_dir: Path | None = None
    history_max_bytes: int = 256 << 20
    history_max_age_s: float = 7 * 86400.0  # of event time before the newest point

    @property
    def limits(self) -> WindowLimits:
        return WindowLimits(span_s=self.window_s, max_points=self.window_max_points)

    @property
    def retention(self) -> Retention:
        return Retention(max_bytes=self.history_max_bytes, max_age_s=self.history_max_age_s)


def parser() -> argparse.ArgumentParser:
    p = config.service_parser("feature_store", "ACE feature store: per-backend telemetry windows and their features.")
    defaults = FeatureStoreConfig()
    option(
        p,
        "--window-s",
        env="ACE_WINDOW_S",
        cast=float,
        default=defaults.window_s,
        help="event-time seconds of telemetry each backend's window holds",
    )
    option(
        p,
        "--window-max-points",
        env="ACE_WINDOW_MAX_POINTS",
        cast=int,
        default=defaults.window_max_points,
        help="most points one backend's window holds",
    )
    option(
        p,
        "--max-backends",
        env="ACE_MAX_BACKENDS",
        cast=int,
        default=defaults.max_backends,
        help="most backends tracked; points for new backends beyond it are rejected",
    )
    option(
        p,
        "--max-points-per-request",
        env="ACE_MAX_POINTS_PER_REQUEST",
        cast=int,
        default=defaults.max_points_per_request,
        help="most points one Ingest request may carry",
    )
    option(
        p,
        "--max-streams",
        env="ACE_MAX_STREAMS",
        cast=int,
        default=defaults.max_streams,
        help="most WatchFeatures, IngestStream and ReadHistory calls open at once",
    )
    option(
        p,
        "--history-dir",
        env="ACE_HISTORY_DIR",
        cast=str,
        default="",
        help="directory the history of accepted points is appended to, for training (empty: keep none)",
    )
    option(
        p,
        "--history-max-bytes",
        env="ACE_HISTORY_MAX_BYTES",
        cast=int,
        default=defaults.history_max_bytes,
        help="most bytes the history keeps; the oldest segments go first",
    )
    option(
        p,
        "--history-max-age-s",
        env="ACE_HISTORY_MAX_AGE_S",
        cast=float,
        default=defaults.history_max_age_s,
        help="event-time seconds of history kept before its newest point",
    )
    return p


def build(args: argparse.Namespace) -> FeatureStoreConfig:
    require(math.isfinite(args.window_s) and args.window_s > 0, f"--window-s must be > 0, got {args.window_s}")
    require(args.window_max_points >= 1, f"--window-max-points must be >= 1, got {args.window_max_points}")
    require(args.max_backends >= 1, f"--max-backends must be >= 1, got {args.max_backends}")
    require(
        args.max_points_per_request >= 1, f"--max-points-per-request must be >= 1, got {args.max_points_per_request}"
    )
    require(args.max_streams >= 1, f"--max-streams must be >= 1, got {args.max_streams}")
    require(args.history_max_bytes >= 1 << 20, f"--history-max-bytes must be >= 1 MiB, got {args.history_max_bytes}")
    require(
        math.isfinite(args.history_max_age_s) and args.history_max_age_s > 0,
        f"--history-max-age-s must be > 0, got {args.history_max_age_s}",
    )
    return FeatureStoreConfig(
        **config.shared(args),
        window_s=args.window_s,
        window_max_points=args.window_max_points,
        max_backends=args.max_backends,
        max_points_per_request=args.max_points_per_request,
        max_streams=args.max_streams,
        history_dir=Path(args.history_dir) if args.history_dir else None,
        history_max_bytes=args.history_max_bytes,
        history_max_age_s=args.history_max_age_s,
    )


def load(argv: Sequence[str] | None = None) -> FeatureStoreConfig:
    """The config from argv (default sys.argv) and the environment; a bad
    value ends the process with a message naming the setting."""
    return config.parse(parser(), argv, build)
