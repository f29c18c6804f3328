"""The router's settings: flags, ACE_* variables, defaults."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.common import config
from services.common.config import option, require
from services.common.tls import PLAINTEXT, Tls
from services.router.policy import Settings


@dataclass(frozen=True)
class RouterConfig:
    host: str
    port: int
    grace_s: float
    log_format: str
    log_level: str
    feature_store_addr: str
    predictor_addr: str
    policy: Settings
    predict_timeout_s: float
    # WatchRoutingTable streams open at once; each holds a worker thread.
    max_streams: int = 32
    # TLS for the port and for calls to the feature store and predictor.
    tls: Tls = PLAINTEXT
    # The decision log that outcomes are joined to: quality arrives hours
    # later, so it must hold hours of decisions (48 bytes each).
    decision_log_max: int = 2_000_000
    decision_log_max_age_s: float = 6 * 3600.0
    # The alternative breaker threshold the policy shadow runs; 0: no shadow.
    shadow_threshold_ms: float = 0.0
    # How often accepted outcomes are sent on to the feature store, seconds.
    outcome_flush_s: float = 5.0
    # Prometheus metrics and the risk board over HTTP; off unless set.
    metrics_port: int = config.METRICS_OFF


def parser() -> argparse.ArgumentParser:
    p = config.service_parser("router", "ACE router: picks a backend per request from forecast-driven breakers.")
    config.add_address(p, "feature_store")
    config.add_address(p, "predictor")
    defaults = Settings()
    option(
        p,
        "--threshold-ms",
        env="ACE_THRESHOLD_MS",
        cast=float,
        default=defaults.threshold_ms,
        help="latency SLO a breaker opens at",
    )
    option(
        p,
        "--horizon-s",
        env="ACE_HORIZON_S",
        cast=float,
        default=defaults.horizon_s,
        help="forecast horizon, used when the model does not state one",
    )
    option(
        p,
        "--hysteresis",
        env="ACE_HYSTERESIS",
        cast=float,
        default=defaults.hysteresis,
        help="a breaker closes below threshold x (1 - hysteresis)",
    )
    option(
        p,
        "--min-open-s",
        env="ACE_MIN_OPEN_S",
        cast=float,
        default=defaults.min_open_s,
        help="event-time seconds a breaker stays open at least",
    )
    option(
        p,
        "--recovery-s",
        env="ACE_RECOVERY_S",
        cast=float,
        default=defaults.recovery_s,
        help="event-time seconds a half-open breaker must stay low to close",
    )
    option(
        p,
        "--warm-after-s",
        env="ACE_WARM_AFTER_S",
        cast=float,
        default=defaults.warm_after_s,
        help="event time a backend's window must cover (with at least 2 points) before its figures are trusted",
    )
    option(
        p,
        "--probe-after-s",
        env="ACE_PROBE_AFTER_S",
        cast=float,
        default=defaults.probe_after_s,
        help="event time, against the fleet's newest telemetry, after which an open breaker with no figure half-opens",
    )
    option(
        p,
        "--open-penalty",
        env="ACE_OPEN_PENALTY",
        cast=float,
        default=defaults.open_penalty,
        help="when the caller gives requests in flight: the extra requests an open backend counts",
    )
    config.switch(
        p,
        "--share-by-capacity",
        env="ACE_SHARE_BY_CAPACITY",
        default=defaults.share_by_capacity,
        help="without in-flight counts: on, each backend's share follows its estimated capacity (weighted "
        "rotation); off, plain round robin",
    )
    config.switch(
        p,
        "--rate-aware",
        env="ACE_RATE_AWARE",
        default=defaults.rate_aware,
        help="when the caller gives requests in flight: on, the new request counts as more than one on a backend "
        "slower than the candidates' mean capacity (at most 1 + open penalty); off, counts alone",
    )
    config.switch(
        p,
        "--count-reported",
        env="ACE_COUNT_REPORTED",
        default=defaults.count_reported,
        help="without in-flight counts: on, once callers report how their requests end (ReportOutcomes) soon "
        "enough, place least-loaded on the router's own counts of requests not yet reported ended; off, never",
    )
    option(
        p,
        "--capacity-smoothing",
        env="ACE_CAPACITY_SMOOTHING",
        cast=float,
        default=defaults.capacity_smoothing,
        help="weight of each interval's capacity estimate in the running one (1: no smoothing)",
    )
    option(
        p,
        "--capacity-deadband",
        env="ACE_CAPACITY_DEADBAND",
        cast=float,
        default=defaults.capacity_deadband,
        help="in the weighted rotation: capacity estimates within this share of the candidates' mean count as "
        "the mean, and larger differences count only beyond it (0: every difference counts)",
    )
    option(
        p,
        "--open-share",
        env="ACE_OPEN_SHARE",
        cast=float,
        default=defaults.open_share,
        help="in the weighted rotation: the share of its weight a backend keeps while its breaker is open "
        "(0: drained; 1: a warning only)",
    )
    config.switch(
        p,
        "--overload-guard",
        env="ACE_OVERLOAD_GUARD",
        default=defaults.overload_guard,
        help="on: a backend over the threshold while the pool's median latency is not has its capacity estimate "
        "capped at load x threshold / latency",
    )
    config.switch(
        p,
        "--observed-floor",
        env="ACE_OBSERVED_FLOOR",
        default=defaults.observed_floor,
        help="on: a proven model's breaker runs on the higher of its forecast and the observed latency once the "
        "observed is at or over the breaker's lower mark, so it opens at least whenever a reactive breaker would",
    )
    option(
        p,
        "--open-after-s",
        env="ACE_OPEN_AFTER_S",
        cast=float,
        default=defaults.open_after_s,
        help="event time a closed breaker's risk must stay at or over the threshold before it opens (0: at once)",
    )
    option(
        p,
        "--error-penalty",
        env="ACE_ERROR_PENALTY",
        cast=float,
        default=defaults.error_penalty,
        help="when the caller gives requests in flight: the extra requests a backend counts when its reported "
        "outcomes have all been failing (0: off)",
    )
    option(
        p,
        "--error-decay-s",
        env="ACE_ERROR_DECAY_S",
        cast=float,
        default=defaults.error_decay_s,
        help="seconds over which a backend's failure score fades without new outcomes",
    )
    option(
        p,
        "--predict-timeout-s",
        env="ACE_PREDICT_TIMEOUT_S",
        cast=float,
        default=1.0,
        help="deadline of the router's calls to the predictor",
    )
    option(
        p,
        "--max-streams",
        env="ACE_MAX_STREAMS",
        cast=int,
        default=32,
        help="WatchRoutingTable streams open at once; one more is RESOURCE_EXHAUSTED",
    )
    option(
        p,
        "--decision-log-max",
        env="ACE_DECISION_LOG_MAX",
        cast=int,
        default=RouterConfig.decision_log_max,
        help="decisions the log keeps for outcome reports (48 bytes each); the oldest go first",
    )
    option(
        p,
        "--decision-log-max-age-s",
        env="ACE_DECISION_LOG_MAX_AGE_S",
        cast=float,
        default=RouterConfig.decision_log_max_age_s,
        help="seconds (router clock) a decision can still take an outcome report",
    )
    option(
        p,
        "--shadow-threshold-ms",
        env="ACE_SHADOW_THRESHOLD_MS",
        cast=float,
        default=RouterConfig.shadow_threshold_ms,
        help="breaker threshold of the policy shadow, compared with the live one on the same traffic (0: off)",
    )
    option(
        p,
        "--outcome-flush-s",
        env="ACE_OUTCOME_FLUSH_S",
        cast=float,
        default=RouterConfig.outcome_flush_s,
        help="seconds between sends of accepted outcomes to the feature store",
    )
    return p


def _finite(value: float, flag: str, rule: str) -> None:
    """Stops on a value that is not finite or breaks `rule` (">= 0" or "> 0",
    maybe with a note); argparse takes "inf" and "nan" as floats."""
    ok = value >= 0 if rule.startswith(">=") else value > 0
    require(math.isfinite(value) and ok, f"{flag} must be {rule}, got {value}")


def build(args: argparse.Namespace) -> RouterConfig:
    require(args.threshold_ms > 0, f"--threshold-ms must be > 0, got {args.threshold_ms}")
    require(args.horizon_s > 0, f"--horizon-s must be > 0, got {args.horizon_s}")
    require(0 <= args.hysteresis < 1, f"--hysteresis must be in [0, 1), got {args.hysteresis}")
    require(args.min_open_s >= 0, f"--min-open-s must be >= 0, got {args.min_open_s}")
    require(args.recovery_s >= 0, f"--recovery-s must be >= 0, got {args.recovery_s}")
    _finite(args.warm_after_s, "--warm-after-s", ">= 0")
    _finite(args.probe_after_s, "--probe-after-s", "> 0")
    require(args.open_penalty >= 0, f"--open-penalty must be >= 0, got {args.open_penalty}")
    _finite(args.error_penalty, "--error-penalty", ">= 0 (0: off)")
    _finite(args.error_decay_s, "--error-decay-s", "> 0")
    _finite(args.open_after_s, "--open-after-s", ">= 0 (0: at once)")
    require(0 < args.capacity_smoothing <= 1, f"--capacity-smoothing must be in (0, 1], got {args.capacity_smoothing}")
    require(0 <= args.capacity_deadband < 1, f"--capacity-deadband must be in [0, 1), got {args.capacity_deadband}")
    require(0 <= args.open_share <= 1, f"--open-share must be in [0, 1], got {args.open_share}")
    require(args.predict_timeout_s > 0, f"--predict-timeout-s must be > 0, got {args.predict_timeout_s}")
    require(args.max_streams >= 1, f"--max-streams must be >= 1, got {args.max_streams}")
    require(args.decision_log_max >= 1, f"--decision-log-max must be >= 1, got {args.decision_log_max}")
    require(
        math.isfinite(args.decision_log_max_age_s) and args.decision_log_max_age_s > 0,
        f"--decision-log-max-age-s must be > 0, got {args.decision_log_max_age_s}",
    )
    require(
        math.isfinite(args.shadow_threshold_ms) and args.shadow_threshold_ms >= 0,
        f"--shadow-threshold-ms must be >= 0 (0: off), got {args.shadow_threshold_ms}",
    )
    require(
        math.isfinite(args.outcome_flush_s) and args.outcome_flush_s > 0,
        f"--outcome-flush-s must be > 0, got {args.outcome_flush_s}",
    )
    return RouterConfig(
        **config.shared(args),
        feature_store_addr=args.feature_store_addr,
        predictor_addr=args.predictor_addr,
        policy=Settings(
            threshold_ms=args.threshold_ms,
            hysteresis=args.hysteresis,
            min_open_s=args.min_open_s,
            recovery_s=args.recovery_s,
            warm_after_s=args.warm_after_s,
            probe_after_s=args.probe_after_s,
            horizon_s=args.horizon_s,
            open_penalty=args.open_penalty,
            open_after_s=args.open_after_s,
            error_penalty=args.error_penalty,
            error_decay_s=args.error_decay_s,
            share_by_capacity=args.share_by_capacity,
            capacity_smoothing=args.capacity_smoothing,
            capacity_deadband=args.capacity_deadband,
            open_share=args.open_share,
            rate_aware=args.rate_aware,
            count_reported=args.count_reported,
            overload_guard=args.overload_guard,
            observed_floor=args.observed_floor,
        ),
        predict_timeout_s=args.predict_timeout_s,
        max_streams=args.max_streams,
        decision_log_max=args.decision_log_max,
        decision_log_max_age_s=args.decision_log_max_age_s,
        shadow_threshold_ms=args.shadow_threshold_ms,
        outcome_flush_s=args.outcome_flush_s,
    )


def load(argv: Sequence[str] | None = None) -> RouterConfig:
    return config.parse(parser(), argv, build)
