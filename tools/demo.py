"""`make run`: the whole constellation on one machine. Starts the four
services, trains and publishes a model, then streams a three-backend scenario
into the feature store in accelerated event time while a demo proxy asks the
router for a backend at every step. Prints a timeline and a summary.

Then a second act, the learning loop: the same fleet moves to faster
hardware, the proxy goes on deciding and reporting what each request saw,
and the timeline says when the predictor's drift detector fires, when the
trainer's retrained candidate runs in shadow, when the gate promotes it, and
when an operator's forced publish of a worse model is rolled back, with the
active version's error before, during and after (GetModelHealth)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import grpc

from ace.v1 import (
    router_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from tools.constellation import Constellation
from tools.demo_loop import learning_loop, print_policy_shadow, service_args
from tools.demo_scenario import stream_scenario, summarise, train


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.monotonic()
    print("ACE demo: starting feature_store, predictor, router and trainer as separate processes")
    constellation = Constellation(run_dir, extra_args=service_args(run_dir))
    loop_ok = False
    with constellation:
        for name, proc in constellation.processes.items():
            print(f"  {name:<13} pid {proc.popen.pid:<7} 127.0.0.1:{proc.port}   log {proc.log_path}")
        channels = {name: grpc.insecure_channel(constellation.addr(name)) for name in constellation.processes}
        print("\nTraining a random forest on synthetic history, exporting it to ONNX, publishing it:")
        result = train(
            trainer_pb2_grpc.TrainerStub(channels["trainer"]),
            trainer_pb2.SyntheticSource(seed=args.train_seed),
            constellation.admin_metadata(),
        )
        if not result.published:
            print(f"publishing failed: {result.publish_error}", file=sys.stderr)
            return 1
        m = result.metrics
        print(
            f"  model {result.version}: MAE {m.mae_ms:.1f} ms (persistence {m.persistence_mae_ms:.1f} ms), "
            f"R2 {m.r2:.3f}, breach precision {m.breach_precision:.2f} recall {m.breach_recall:.2f} "
            f"on {m.test_rows} held-out rows"
        )
        steps = stream_scenario(
            channels,
            scenario_seed=args.scenario_seed,
            requests=args.requests,
            print_every=args.print_every,
            report=True,
        )
        summarise(steps, args.threshold_ms)
        if args.loop:
            print_policy_shadow(router_pb2_grpc.RouterStub(channels["router"]))
            loop_ok = learning_loop(
                channels,
                constellation.admin_metadata(),
                start_at=steps[-1].t,
                requests=args.requests,
                seed=args.scenario_seed,
            )
        for channel in channels.values():
            channel.close()
    codes = constellation.exit_codes
    print(f"\nAll services stopped ({codes}); {time.monotonic() - started:.0f} s in all.")
    stopped = all(c == 0 for c in codes.values())
    return 0 if stopped and (loop_ok or not args.loop) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    parser.add_argument("--run-dir", default=".run/demo", help="logs and model versions of this run (wiped first)")
    parser.add_argument("--requests", type=int, default=20, help="routing decisions per 10 s step")
    parser.add_argument("--print-every", type=int, default=3, help="print every Nth step, and every change")
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the synthetic training history")
    parser.add_argument("--scenario-seed", type=int, default=11, help="seed of the demo scenario's noise")
    parser.add_argument("--threshold-ms", type=float, default=300.0, help="the router's threshold (for the summary)")
    parser.add_argument(
        "--no-loop", dest="loop", action="store_false", help="stop after the scenario, without the learning loop act"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
