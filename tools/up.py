"""`make up`: the four services on their default ports until Ctrl-C or
`make down`. Model versions and the feature store's history persist in the
run directory; when the predictor has none yet, a first model is trained and
published so the router has forecasts from the start; the trainer replaces it
with one trained on the fleet's own history once there is enough. A service that dies is
restarted on its port with backoff; <run-dir>/pids/<name>.pid holds each
service's pid."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import grpc

from ace.v1 import predictor_pb2, predictor_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.common.config import DEFAULT_PORTS
from tools.constellation import Constellation


def bootstrap_model(constellation: Constellation) -> None:
    with grpc.insecure_channel(constellation.addr("predictor")) as channel:
        try:
            info = predictor_pb2_grpc.PredictorStub(channel).GetActiveModel(
                predictor_pb2.GetActiveModelRequest(), timeout=5
            )
            print(f"predictor restored model {info.metadata.version}")
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
    print("no model yet: training one on synthetic history and publishing it ...")
    with grpc.insecure_channel(constellation.addr("trainer")) as channel:
        request = trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=1), publish=True)
        stub = trainer_pb2_grpc.TrainerStub(channel)
        for progress in stub.Train(request, timeout=600, metadata=constellation.admin_metadata()):
            if progress.HasField("result"):
                r = progress.result
                print(f"model {r.version}: published={r.published} {r.publish_error}")


def persistent_dirs(run_dir: Path) -> dict[str, list[str]]:
    """Where the predictor keeps its versions and the feature store its
    history: inside the run directory, so they outlive a restart."""
    return {
        "predictor": ["--model-dir", str(run_dir / "models")],
        "feature_store": ["--history-dir", str(run_dir / "history")],
    }


# The trainer learns the fleet it is put in front of without an operator:
# the first model is synthetic, and once the store holds two hours of the
# fleet's own history a model trained on it runs as a shadow and the gate
# judges it (docs/model.md, "The fleet model trains itself").
TRAINER_ARGS = ["--auto-train", "true"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.up", description=__doc__)
    parser.add_argument("--run-dir", default=".run", help="where logs, model versions and the pid file live")
    parser.add_argument("--no-bootstrap", action="store_true", help="do not train a first model")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / "up.pid"
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    constellation = Constellation(
        run_dir,
        ports=dict(DEFAULT_PORTS),
        extra_args={**persistent_dirs(run_dir), "trainer": TRAINER_ARGS},
        supervise=True,
    )
    with constellation:
        pid_file.write_text(str(os.getpid()))
        for name, proc in constellation.processes.items():
            metrics = f"metrics http://127.0.0.1:{proc.metrics_port}/metrics" if proc.metrics_port else "no metrics"
            print(f"{name:<13} 127.0.0.1:{proc.port}  {metrics}  pid {proc.popen.pid}  log {proc.log_path}")
        if not args.no_bootstrap:
            bootstrap_model(constellation)
        board = constellation.processes["router"].metrics_port
        print(f"ACE is up. Risk board: http://127.0.0.1:{board}/   Risks: .venv/bin/python -m tools.ace risk")
        print(
            "The trainer learns this fleet by itself once the feature store holds 2 h of its telemetry; "
            "`.venv/bin/python -m tools.ace models` shows what each version learnt from."
        )
        print("Try: grpcurl -plaintext localhost:50053 list   (Ctrl-C or `make down` stops it)")
        stop.wait()
        print("stopping ...")
    pid_file.unlink(missing_ok=True)
    codes = constellation.exit_codes
    print(f"stopped: {codes}")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
