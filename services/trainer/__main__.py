"""python -m services.trainer: parse the config, serve until SIGTERM."""

from __future__ import annotations

from collections.abc import Sequence

from services.common import logs
from services.common.serving import serve_until_signal
from services.trainer import config
from services.trainer.server import start


def main(argv: Sequence[str] | None = None) -> None:
    cfg = config.load(argv)
    logs.configure("trainer", fmt=cfg.log_format or None, level=cfg.log_level)
    running = start(cfg)
    serve_until_signal(running, cfg.grace_s, host=cfg.host, predictor_addr=cfg.predictor_addr, horizon_s=cfg.horizon_s)


if __name__ == "__main__":
    main()
