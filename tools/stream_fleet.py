"""`python -m tools.stream_fleet`: a fleet ACE has never seen, streamed into a
running ACE (`make up`'s ports by default), to watch it earn the right to
move traffic. The telemetry comes from bench/fleet/generator.py (replicas,
capacities, latencies and faults of another kind than the trainer's
synthetic history), sent point by point through FeatureStore.Ingest in
accelerated event time, with a proxy asking Router.Decide at every step.

Every `--print-every-s` of event time it prints what the decisions rested
on (DecisionBasis: MODEL_UNPROVEN while the model runs in shadow, FORECAST
once the trust gate passes it), the model the router holds and what it
learnt from, the trust verdict, and what the trainer is waiting for; and a
line whenever the model, its trust or the trainer's count changes. Nobody
calls Train: `make up` starts the trainer with --auto-train."""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Sequence

import grpc

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    telemetry_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from bench.fleet import generator
from services.common.timeutil import to_timestamp
from tools.demo_scenario import TableWatcher

BASES = {v: k for k, v in router_pb2.DecisionBasis.items()}
SOURCES = {v: k for k, v in predictor_pb2.HistorySource.items()}


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"+{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Ace:
    def __init__(self, args: argparse.Namespace) -> None:
        self.channels = [
            grpc.insecure_channel(a) for a in (args.feature_store, args.router, args.predictor, args.trainer)
        ]
        fs, rt, pr, tr = self.channels
        self.store = feature_store_pb2_grpc.FeatureStoreStub(fs)
        self.router = router_pb2_grpc.RouterStub(rt)
        self.predictor = predictor_pb2_grpc.PredictorStub(pr)
        self.trainer = trainer_pb2_grpc.TrainerStub(tr)

    def close(self) -> None:
        for c in self.channels:
            c.close()

    def learnt_from(self, version: str) -> str:
        try:
            models = self.predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models
        except grpc.RpcError as exc:
            return f"unknown ({exc.code().name})"
        found = [m.metadata.history_source for m in models if m.metadata.version == version]
        return SOURCES.get(found[0], "?").removeprefix("HISTORY_SOURCE_").lower() if found else "?"

    def trainer_status(self) -> trainer_pb2.TrainerStatus:
        status: trainer_pb2.TrainerStatus = self.trainer.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
        return status


def stream(args: argparse.Namespace) -> int:
    fleet = generator.generate(args.seed, duration_s=args.hours * 3600.0, interval_s=args.interval_s)
    ids = [r.backend_id for r in fleet.replicas]
    ace = Ace(args)
    watcher = TableWatcher(ace.router)
    print(
        f"Streaming {len(fleet.times)} steps of {len(ids)} backends ({args.hours:g} h of event time, a point every "
        f"{args.interval_s:g} s) of generated fleet seed {args.seed}; {args.decisions} decisions a step."
    )
    seen: tuple[str, bool, int] | None = None
    bases: collections.Counter[str] = collections.Counter()
    next_print = args.print_every_s
    try:
        for i, t in enumerate(fleet.times.tolist()):
            points = [
                telemetry_pb2.TelemetryPoint(
                    backend_id=b,
                    observed_at=to_timestamp(t),
                    load=float(fleet.load[i, k]),
                    latency_ms=float(fleet.latency_ms[i, k]),
                    error_rate=float(fleet.error_rate[i, k]),
                )
                for k, b in enumerate(ids)
            ]
            due = time.monotonic() + args.pace_s
            ace.store.Ingest(feature_store_pb2.IngestRequest(points=points), timeout=10)
            watcher.wait_for(ids, t, timeout_s=30)
            for n in range(args.decisions):
                d = ace.router.Decide(router_pb2.DecideRequest(request_id=f"{i}-{n}"), timeout=5)
                bases[BASES[d.basis]] += 1
            elapsed = t - fleet.start
            table = watcher.table
            status = ace.trainer_status()
            now = (table.model_version, table.model_proven, status.retrain.started)
            if now != seen:
                learnt = ace.learnt_from(table.model_version) if table.model_version else "-"
                trust = "PROVEN" if table.model_proven else "unproven"
                print(
                    f"{clock(elapsed)} | model {table.model_version or '-'} (learnt from {learnt}), {trust}: "
                    f"{table.trust_reason} | trainer: {status.retrain.started} started, {status.retrain.waiting_for}"
                )
                seen = now
            if elapsed >= next_print:
                mix = ", ".join(f"{b} {c}" for b, c in bases.most_common())
                print(f"{clock(elapsed)} | decisions since the last line: {mix}")
                bases.clear()
                next_print += args.print_every_s
            time.sleep(max(0.0, due - time.monotonic()))
    finally:
        watcher.close()
        ace.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.stream_fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--feature-store", default="127.0.0.1:50051")
    p.add_argument("--router", default="127.0.0.1:50053")
    p.add_argument("--predictor", default="127.0.0.1:50052")
    p.add_argument("--trainer", default="127.0.0.1:50054")
    p.add_argument("--seed", type=int, default=1, help="the generated fleet's seed")
    p.add_argument("--hours", type=float, default=4.0, help="event time to stream")
    p.add_argument("--interval-s", type=float, default=10.0, help="seconds of event time between two points")
    p.add_argument("--decisions", type=int, default=5, help="Decide calls per step")
    p.add_argument("--print-every-s", type=float, default=1800.0, help="event time between two summary lines")
    # The predictor scores forecasts and the trainer looks at the history on
    # wall-clock ticks (10 s and 5 s by default): faster than this, event
    # time runs past them between two ticks.
    p.add_argument("--pace-s", type=float, default=0.1, help="wall-clock seconds per step, at least")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return stream(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
