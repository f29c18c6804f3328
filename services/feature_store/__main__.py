"""python -m services.feature_store: serve the feature store until SIGTERM or SIGINT."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from services.common import logs
from services.common.serving import serve_until_signal
from services.feature_store.config import load
from services.feature_store.server import start


def main(argv: Sequence[str] | None = None) -> None:
    config = load(argv)
    logs.configure("feature_store", config.log_format or None, config.log_level)
    running = start(config)
    serve_until_signal(
        running,
        config.grace_s,
        host=config.host,
        window_s=config.window_s,
        window_max_points=config.window_max_points,
        max_backends=config.max_backends,
        history_dir=str(config.history_dir) if config.history_dir else None,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
