"""Flags with ACE_* environment fallbacks. Every service builds a frozen
config dataclass from them; a flag given on the command line wins over the
variable, and the variable over the built-in default."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from services.common import tls

T = TypeVar("T")

DEFAULT_PORTS = {"feature_store": 50051, "predictor": 50052, "router": 50053, "trainer": 50054}
# Each service's Prometheus metrics port (HTTP), apart from its gRPC port so
# a scraper never needs the gRPC port and TLS stays the gRPC port's business.
DEFAULT_METRICS_PORTS = {"feature_store": 9451, "predictor": 9452, "router": 9453, "trainer": 9454}
# --metrics-port value that serves no metrics at all.
METRICS_OFF = -1
ADDR_ENV = {
    "feature_store": "ACE_FEATURE_STORE_ADDR",
    "predictor": "ACE_PREDICTOR_ADDR",
    "router": "ACE_ROUTER_ADDR",
    "trainer": "ACE_TRAINER_ADDR",
}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str,
    cast: Callable[[str], T],
    default: T,
    help: str,
) -> None:
    raw = os.environ.get(env)
    value = default
    if raw is not None and raw != "":
        try:
            value = cast(raw)
        except ValueError as exc:
            parser.error(f"{env}={raw!r}: {exc}")
    parser.add_argument(flag, type=cast, default=value, help=f"{help} [env {env}; default {default}]")


def service_parser(service: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options every service shares."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}", description=description)
    option(parser, "--host", env="ACE_HOST", cast=str, default="[::]", help="address to listen on")
    option(
        parser,
        "--port",
        env=f"ACE_{service.upper()}_PORT",
        cast=int,
        default=DEFAULT_PORTS[service],
        help="port to listen on (0 picks a free one)",
    )
    option(
        parser, "--grace-s", env="ACE_GRACE_S", cast=float, default=5.0, help="seconds in-flight calls get on SIGTERM"
    )
    option(
        parser,
        "--log-format",
        env="ACE_LOG_FORMAT",
        cast=str,
        default="",
        help="console or json (default: by terminal)",
    )
    option(parser, "--log-level", env="ACE_LOG_LEVEL", cast=str, default="info", help="debug, info, warning or error")
    option(
        parser,
        "--tls-cert-file",
        env="ACE_TLS_CERT_FILE",
        cast=str,
        default="",
        help="PEM certificate chain: serve TLS on the port (with --tls-key-file); empty serves plaintext",
    )
    option(
        parser,
        "--tls-key-file",
        env="ACE_TLS_KEY_FILE",
        cast=str,
        default="",
        help="PEM private key of the certificate",
    )
    option(
        parser,
        "--tls-ca-file",
        env="ACE_TLS_CA_FILE",
        cast=str,
        default="",
        help="PEM CA: call the services this one depends on over TLS, checking their certificates",
    )
    metrics_env = f"ACE_{service.upper()}_METRICS_PORT"
    raw = os.environ.get(metrics_env)
    try:
        # None until resolved in check_shared: its default depends on --port.
        metrics_default = int(raw) if raw else None
    except ValueError as exc:
        parser.error(f"{metrics_env}={raw!r}: {exc}")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=metrics_default,
        help=f"HTTP port of the Prometheus metrics ({METRICS_OFF}: none; 0 picks a free one) [env {metrics_env}; "
        f"default {DEFAULT_METRICS_PORTS[service]}, or 0 when --port is 0 so that servers started for tests "
        "never collide]",
    )
    parser.set_defaults(metrics_default_port=DEFAULT_METRICS_PORTS[service])
    return parser


def add_address(parser: argparse.ArgumentParser, service: str) -> None:
    """Adds --<service>-addr, the address of a service this one calls."""
    option(
        parser,
        f"--{service.replace('_', '-')}-addr",
        env=ADDR_ENV[service],
        cast=str,
        default=f"localhost:{DEFAULT_PORTS[service]}",
        help=f"address of the {service.replace('_', ' ')}",
    )


LOG_FORMATS = ("", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def check_shared(args: argparse.Namespace) -> None:
    """The rules for the options service_parser adds, applied once for all."""
    require(0 <= args.port <= 65535, f"--port must be in [0, 65535], got {args.port}")
    if args.metrics_port is None:
        args.metrics_port = 0 if args.port == 0 else args.metrics_default_port
    require(
        METRICS_OFF <= args.metrics_port <= 65535,
        f"--metrics-port must be in [{METRICS_OFF}, 65535] ({METRICS_OFF}: no metrics), got {args.metrics_port}",
    )
    require(
        args.metrics_port in (0, METRICS_OFF) or args.metrics_port != args.port,
        f"--metrics-port must differ from --port, both are {args.port}",
    )
    require(math.isfinite(args.grace_s) and args.grace_s >= 0, f"--grace-s must be >= 0, got {args.grace_s}")
    require(args.log_format in LOG_FORMATS, f"--log-format must be console or json, got {args.log_format!r}")
    args.log_level = args.log_level.lower()
    require(args.log_level in LOG_LEVELS, f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {args.log_level!r}")


SHARED_FIELDS = ("host", "port", "grace_s", "log_format", "log_level", "metrics_port")


def shared(args: argparse.Namespace) -> dict[str, Any]:
    """The options service_parser adds, as keyword arguments for a service's
    config dataclass (each declares these six fields and `tls`)."""
    try:
        settings = tls.load(args.tls_cert_file, args.tls_key_file, args.tls_ca_file)
    except tls.TlsError as exc:
        raise ConfigError(str(exc)) from exc
    return {**{name: getattr(args, name) for name in SHARED_FIELDS}, "tls": settings}


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None, build: Callable[[argparse.Namespace], T]) -> T:
    """Parses, checks the shared options and builds the config; a ConfigError
    ends the process with a message that names the setting."""
    args = parser.parse_args(argv)
    try:
        check_shared(args)
        return build(args)
    except ConfigError as exc:
        parser.error(str(exc))


def on_off(raw: str) -> bool:
    """An on/off switch, as the flags that turn a mechanism on or off take it."""
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"must be on or off, got {raw!r}")
    return value == "on"


def switch(parser: argparse.ArgumentParser, flag: str, *, env: str, default: bool, help: str) -> None:
    """An on/off flag with its environment variable."""
    option(parser, flag, env=env, cast=on_off, default=default, help=help)


def boolean(raw: str) -> bool:
    """A yes/no setting: true/1/yes or false/0/no (any case)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
