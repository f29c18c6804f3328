"""The predictor's settings, from flags and ACE_* variables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common import admin, config
from services.common.admin import REFUSE_ALL, AdminAuth

MIB = 1024 * 1024


@dataclass(frozen=True)
class PredictorConfig:
    host: str = "[::]"
    port: int = config.DEFAULT_PORTS["predictor"]
    grace_s: float = 5.0
    log_format: str = ""
    log_level: str = "info"
    model_dir: Path = Path(".run/models")
    max_model_bytes: int = 64 * MIB
    # PublishModel and Rollback need this token; the default refuses them.
    admin: AdminAuth = REFUSE_ALL


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
    return p


def build(args: argparse.Namespace) -> PredictorConfig:
    config.require(args.max_model_bytes > 0, f"--max-model-bytes: must be > 0, got {args.max_model_bytes}")
    return PredictorConfig(
        **config.shared(args),
        model_dir=args.model_dir,
        max_model_bytes=args.max_model_bytes,
        admin=admin.from_args(args),
    )


def load(argv: Sequence[str] | None = None) -> PredictorConfig:
    return config.parse(parser(), argv, build)
