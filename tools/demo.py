"""`make run`: the whole constellation on one machine. Starts the four
services, trains and publishes a model, then streams a three-backend scenario
into the feature store in accelerated event time while a demo proxy asks the
router for a backend at every step. Prints a timeline and a summary."""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    telemetry_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common import synthetic
from services.common.telemetry import Point
from services.common.timeutil import to_seconds, to_timestamp
from tools.constellation import Constellation

ACTION = {v: k for k, v in router_pb2.Action.items()}
STATE = {v: k for k, v in router_pb2.BreakerState.items()}
STATE_SHORT = {"CLOSED": "closed", "OPEN": "OPEN", "HALF_OPEN": "half-open", "BREAKER_STATE_UNSPECIFIED": "-"}


class TableWatcher:
    """Follows WatchRoutingTable so the demo can wait, without polling, until
    the router's table reflects a given event time."""

    def __init__(self, stub: router_pb2_grpc.RouterStub) -> None:
        self._call = stub.WatchRoutingTable(router_pb2.WatchRoutingTableRequest())
        self._cond = threading.Condition()
        self.routes: dict[str, router_pb2.BackendRoute] = {}
        self.table = router_pb2.RoutingTable()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for message in self._call:
                with self._cond:
                    self.table = message
                    for route in message.backends:
                        self.routes[route.backend_id] = route
                    self._cond.notify_all()
        except grpc.RpcError:
            pass

    def wait_for(self, backends: list[str], event_time: float, timeout_s: float = 10.0) -> None:
        def caught_up() -> bool:
            return all(b in self.routes and to_seconds(self.routes[b].as_of) >= event_time for b in backends)

        with self._cond:
            if not self._cond.wait_for(caught_up, timeout_s):
                raise TimeoutError(f"router did not reflect event time {event_time} within {timeout_s} s")

    def close(self) -> None:
        self._call.cancel()


@dataclass
class Step:
    t: float
    points: dict[str, Point]
    routes: dict[str, router_pb2.BackendRoute]
    picks: collections.Counter[str] = field(default_factory=collections.Counter)
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    models: set[str] = field(default_factory=set)


def clock(t: float) -> str:
    offset = int(t - synthetic.EPOCH)
    return f"+{offset // 60:02d}:{offset % 60:02d}"


def backend_cell(point: Point, route: router_pb2.BackendRoute) -> str:
    pred = f"{route.predicted_latency_ms:4.0f}" if route.basis == router_pb2.FORECAST else "   -"
    state = STATE_SHORT[STATE[route.state]] if not route.cold else "cold"
    return f"{point.load:5.1f}rps {point.latency_ms:5.0f}ms ->{pred} {state:<9}"


def train(
    stub: trainer_pb2_grpc.TrainerStub, seed: int, call_metadata: Sequence[tuple[str, str]] = ()
) -> trainer_pb2.TrainResult:
    request = trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=seed), publish=True)
    result = trainer_pb2.TrainResult()
    for progress in stub.Train(request, timeout=600, metadata=call_metadata):
        print(f"  trainer: {progress.stage:<8} {progress.message}")
        if progress.HasField("result"):
            result = progress.result
    return result


def steps_of(history: synthetic.History) -> Iterator[tuple[float, dict[str, Point]]]:
    by_time: dict[float, dict[str, Point]] = collections.defaultdict(dict)
    for p in history.points:
        by_time[p.observed_at][p.backend_id] = p
    for t in sorted(by_time):
        yield t, by_time[t]


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.monotonic()
    print("ACE demo: starting feature_store, predictor, router and trainer as separate processes")
    constellation = Constellation(run_dir, extra_args={"predictor": ["--model-dir", str(run_dir / "models")]})
    with constellation:
        for name, proc in constellation.processes.items():
            print(f"  {name:<13} pid {proc.popen.pid:<7} 127.0.0.1:{proc.port}   log {proc.log_path}")
        channels = {name: grpc.insecure_channel(constellation.addr(name)) for name in constellation.processes}
        print("\nTraining a random forest on synthetic history, exporting it to ONNX, publishing it:")
        result = train(
            trainer_pb2_grpc.TrainerStub(channels["trainer"]), args.train_seed, constellation.admin_metadata()
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
            channels, scenario_seed=args.scenario_seed, requests=args.requests, print_every=args.print_every
        )
        for channel in channels.values():
            channel.close()
        summarise(steps, args.threshold_ms)
    codes = constellation.exit_codes
    print(f"\nAll services stopped ({codes}); {time.monotonic() - started:.0f} s in all.")
    return 0 if all(c == 0 for c in codes.values()) else 1


def stream_scenario(
    channels: dict[str, grpc.Channel],
    *,
    scenario_seed: int = 11,
    requests: int = 20,
    print_every: int = 3,
    echo: Callable[[str], None] = print,
    until_s: float | None = None,
) -> list[Step]:
    """Streams the demo scenario step by step: ingest, wait until the
    router's table shows the step, ask for `requests` decisions. `until_s`
    stops early, that many event-time seconds into the scenario."""
    history = synthetic.demo_scenario(scenario_seed)
    backends = [b.backend_id for b in history.backends]
    ingest = feature_store_pb2_grpc.FeatureStoreStub(channels["feature_store"])
    router = router_pb2_grpc.RouterStub(channels["router"])
    watcher = TableWatcher(router)
    echo(
        f"\nStreaming {len(history.points)} telemetry points of {len(backends)} backends "
        f"({history.points[-1].observed_at - synthetic.EPOCH:.0f} s of event time), "
        f"{requests} routing decisions per 10 s step.\n"
        "Columns per backend: offered load, observed latency -> forecast of the worst latency in the next "
        "5 minutes, breaker state.\n"
    )
    header = f"{'event':>6} | " + " | ".join(f"{b:<34}" for b in backends) + " | decisions"
    echo(header)
    echo("-" * len(header))
    steps: list[Step] = []
    last_states: dict[str, str] = {}
    last_mix = ""
    for i, (t, points) in enumerate(steps_of(history)):
        if until_s is not None and t - synthetic.EPOCH > until_s:
            break
        request = feature_store_pb2.IngestRequest(
            points=[
                telemetry_pb2.TelemetryPoint(
                    backend_id=p.backend_id,
                    observed_at=to_timestamp(p.observed_at),
                    load=p.load,
                    latency_ms=p.latency_ms,
                    error_rate=p.error_rate,
                )
                for p in points.values()
            ]
        )
        response = ingest.Ingest(request, timeout=5)
        if response.rejected:
            raise RuntimeError(f"feature store rejected demo points: {response.rejected}")
        watcher.wait_for(backends, t)
        step = Step(t, points, dict(watcher.routes))
        for n in range(requests):
            decision = router.Decide(router_pb2.DecideRequest(request_id=f"{i}-{n}"), timeout=5)
            step.picks[decision.backend_id] += 1
            step.actions[ACTION[decision.action]] += 1
            step.skipped.update(decision.skipped)
            step.models.add(decision.model_version)
        steps.append(step)
        states = {b: ("cold" if r.cold else STATE[r.state]) for b, r in step.routes.items()}
        mix = " ".join(sorted(step.actions))
        if i % print_every == 0 or states != last_states or mix != last_mix:
            cells = " | ".join(backend_cell(points[b], step.routes[b]) for b in backends)
            picks = " ".join(f"{b[-1]}:{step.picks[b]:<2}" for b in backends)
            actions = " ".join(f"{a} {c}" for a, c in step.actions.most_common())
            echo(f"{clock(t)} | {cells} | {picks} {actions}")
        last_states, last_mix = states, mix
    watcher.close()
    return steps


@dataclass(frozen=True)
class Drain:
    """A run of steps in which a backend's breaker was open or half-open."""

    backend_id: str
    start: float
    end: float  # last step of the run
    steered: int  # decisions that skipped the backend during the run
    breached: bool  # its latency reached the threshold during the run


@dataclass(frozen=True)
class Episode:
    """A backend's latency reaching the threshold, and what the router did."""

    backend_id: str
    crossed_at: float
    drain: Drain | None  # the drain the crossing fell in; None: traffic was never moved
    served_while_over: int  # decisions that sent it requests while it was over the threshold
    peak_ms: float

    @property
    def lead_s(self) -> float | None:
        """Seconds the drain began before the crossing."""
        return None if self.drain is None else self.crossed_at - self.drain.start


def drains(steps: list[Step], backend_id: str, threshold_ms: float) -> list[Drain]:
    found = []
    run: list[Step] = []
    for step in [*steps, None]:
        draining = step is not None and step.routes[backend_id].state in (router_pb2.OPEN, router_pb2.HALF_OPEN)
        if draining and step is not None:
            run.append(step)
            continue
        if run:
            found.append(
                Drain(
                    backend_id,
                    run[0].t,
                    run[-1].t,
                    sum(s.skipped[backend_id] for s in run),
                    any(s.points[backend_id].latency_ms >= threshold_ms for s in run),
                )
            )
            run = []
    return found


def episodes(steps: list[Step], threshold_ms: float) -> tuple[list[Episode], list[Drain]]:
    """Each crossing of the threshold with the drain it fell in, and the
    drains that no crossing followed (false alarms)."""
    found: list[Episode] = []
    false_drains: list[Drain] = []
    for b in sorted(steps[0].points):
        runs = drains(steps, b, threshold_ms)
        false_drains += [d for d in runs if not d.breached]
        over = [s.points[b].latency_ms >= threshold_ms for s in steps]
        for i, step in enumerate(steps):
            if not over[i] or (i > 0 and over[i - 1]):
                continue
            j = i
            while j + 1 < len(steps) and over[j + 1]:
                j += 1
            stretch = steps[i : j + 1]
            drain = next((d for d in runs if d.start <= step.t <= d.end), None)
            served = sum(s.picks[b] for s in stretch)
            peak = max(s.points[b].latency_ms for s in stretch)
            previous = found[-1] if found and found[-1].backend_id == b else None
            if drain is not None and previous is not None and previous.drain == drain:
                # Latency dipped under the threshold and rose again within one drain: one episode.
                served += previous.served_while_over
                peak = max(peak, previous.peak_ms)
                found[-1] = Episode(b, previous.crossed_at, drain, served, peak)
            else:
                found.append(Episode(b, step.t, drain, served, peak))
    return sorted(found, key=lambda e: e.crossed_at), sorted(false_drains, key=lambda d: d.start)


def summarise(steps: list[Step], threshold_ms: float) -> None:
    print("\nSummary")
    found, false_drains = episodes(steps, threshold_ms)
    for e in found:
        if e.drain is None:
            lead = "traffic was never moved away"
        elif e.drain.start <= e.crossed_at:
            lead = f"traffic moved away {e.lead_s:.0f} s BEFORE latency crossed {threshold_ms:.0f} ms"
        else:
            lead = f"traffic moved away {-(e.lead_s or 0):.0f} s AFTER latency crossed {threshold_ms:.0f} ms"
        print(
            f"- {e.backend_id}: latency crossed {threshold_ms:.0f} ms at {clock(e.crossed_at)} "
            f"(peak {e.peak_ms:.0f} ms); {lead}."
        )
        if e.drain is not None:
            print(
                f"  {e.drain.steered} requests steered off {e.backend_id}; it received {e.served_while_over} while "
                f"over the threshold; its breaker closed again after {clock(e.drain.end)}."
            )
    if not found:
        print("- no backend crossed the threshold")
    if false_drains:
        listed = ", ".join(f"{d.backend_id} at {clock(d.start)} for {d.end - d.start + 10:.0f} s" for d in false_drains)
        moved = sum(d.steered for d in false_drains)
        print(f"False alarms (drained, no breach followed): {len(false_drains)}: {listed}; {moved} requests moved.")
    else:
        print("False alarms (drained, no breach followed): none.")
    total = collections.Counter[str]()
    for s in steps:
        total.update(s.actions)
    print("Decisions by action: " + ", ".join(f"{a} {c}" for a, c in total.most_common()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    parser.add_argument("--run-dir", default=".run/demo", help="logs and model versions of this run (wiped first)")
    parser.add_argument("--requests", type=int, default=20, help="routing decisions per 10 s step")
    parser.add_argument("--print-every", type=int, default=3, help="print every Nth step, and every change")
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the synthetic training history")
    parser.add_argument("--scenario-seed", type=int, default=11, help="seed of the demo scenario's noise")
    parser.add_argument("--threshold-ms", type=float, default=300.0, help="the router's threshold (for the summary)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
