"""python -m services.predictor: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.common import logs
from services.common.serving import serve_until_signal
from services.predictor import config, server


def main(argv: Sequence[str] | None = None) -> int:
    cfg = config.load(argv)
    logs.configure("predictor", cfg.log_format or None, cfg.log_level)
    running = server.start(cfg)
    serve_until_signal(
        running, cfg.grace_s, host=cfg.host, model_dir=str(cfg.model_dir), max_model_bytes=cfg.max_model_bytes
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
