import sys

from services.common import logs
from services.common.serving import serve_until_signal
from services.router.config import load
from services.router.server import start


def main() -> None:
    cfg = load(sys.argv[1:])
    logs.configure("router", cfg.log_format, cfg.log_level)
    running = start(cfg)
    serve_until_signal(
        running,
        cfg.grace_s,
        feature_store=cfg.feature_store_addr,
        predictor=cfg.predictor_addr,
        threshold_ms=cfg.policy.threshold_ms,
    )


if __name__ == "__main__":
    main()
