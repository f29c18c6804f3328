"""`make run`'s first act: a three-backend scenario streamed into the
feature store in accelerated event time while a demo proxy asks the router
for a backend at every step, with the timeline it prints and the summary of
what the router did: each backend's share of decisions around its spikes,
and when its breaker opened (ahead of breaches, or false alarms)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

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
from tools.train_job import stage_name

ACTION = {v: k for k, v in router_pb2.Action.items()}
STATE = {v: k for k, v in router_pb2.BreakerState.items()}
# Event time between two steps of the scenario.
STEP_S = 10.0
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

    def add(self, decisions: Sequence[router_pb2.Decision]) -> None:
        for decision in decisions:
            self.picks[decision.backend_id] += 1
            self.actions[ACTION[decision.action]] += 1
            self.skipped.update(decision.skipped)
            self.models.add(decision.model_version)

    def cells(self, backends: Sequence[str]) -> str:
        return " | ".join(backend_cell(self.points[b], self.routes[b]) for b in backends)

    def mix(self, backends: Sequence[str]) -> str:
        picks = " ".join(f"{b[-1]}:{self.picks[b]:<2}" for b in backends)
        return picks + " " + " ".join(f"{a} {c}" for a, c in self.actions.most_common())


def clock(t: float) -> str:
    offset = int(t - synthetic.EPOCH)
    return f"+{offset // 60:02d}:{offset % 60:02d}"


def backend_cell(point: Point, route: router_pb2.BackendRoute) -> str:
    if route.basis in (router_pb2.FORECAST, router_pb2.OBSERVED_OVER_FORECAST):
        # Over the forecast, the breaker runs on the observed latency beside it.
        pred = f"->{route.predicted_latency_ms:4.0f}"
    elif route.basis == router_pb2.MODEL_UNPROVEN:
        pred = f"~>{route.predicted_latency_ms:4.0f}"  # in shadow: the breaker runs on observed latency
    else:
        pred = "->   -"
    state = STATE_SHORT[STATE[route.state]] if not route.cold else "cold"
    return f"{point.load:5.1f}rps {point.latency_ms:5.0f}ms {pred} {state:<9}"


def train(
    stub: trainer_pb2_grpc.TrainerStub,
    source: trainer_pb2.SyntheticSource,
    call_metadata: Sequence[tuple[str, str]] = (),
    *,
    n_estimators: int = 0,
    echo: Callable[[str], None] = print,
) -> trainer_pb2.TrainResult:
    request = trainer_pb2.TrainRequest(synthetic=source, publish=True, n_estimators=n_estimators)
    result = trainer_pb2.TrainResult()
    for progress in stub.Train(request, timeout=600, metadata=call_metadata):
        echo(f"  trainer: {stage_name(progress.stage):<8} {progress.message}")
        if progress.HasField("result"):
            result = progress.result
    return result


def steps_of(points: Sequence[Point]) -> Iterator[tuple[float, dict[str, Point]]]:
    by_time: dict[float, dict[str, Point]] = collections.defaultdict(dict)
    for p in points:
        by_time[p.observed_at][p.backend_id] = p
    for t in sorted(by_time):
        yield t, by_time[t]


def ingest(stub: feature_store_pb2_grpc.FeatureStoreStub, points: dict[str, Point]) -> None:
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
    response = stub.Ingest(request, timeout=5)
    if response.rejected:
        raise RuntimeError(f"feature store rejected demo points: {response.rejected}")


def report_outcomes(
    router: router_pb2_grpc.RouterStub, decisions: Sequence[router_pb2.Decision], points: dict[str, Point]
) -> collections.Counter[str]:
    """What the proxy saw: each request took its backend's latency at that
    step, and a quality score falling with latency and errors (the
    synthetic generator's rule, without its noise). Returns the receipts
    by status."""
    outcomes = []
    for d in decisions:
        p = points[d.backend_id]
        quality = min(max(1.0 - p.latency_ms / 2000.0 - p.error_rate, 0.0), 1.0)
        outcomes.append(router_pb2.Outcome(decision_id=d.decision_id, latency_ms=p.latency_ms, quality=quality))
    reply = router.ReportOutcomes(router_pb2.ReportOutcomesRequest(outcomes=outcomes), timeout=5)
    return collections.Counter(router_pb2.OutcomeStatus.Name(r.status) for r in reply.receipts)


def stream_scenario(
    channels: dict[str, grpc.Channel],
    *,
    scenario_seed: int = 11,
    requests: int = 20,
    print_every: int = 3,
    echo: Callable[[str], None] = print,
    until_s: float | None = None,
    report: bool = False,
) -> list[Step]:
    """Streams the demo scenario step by step: ingest, wait until the
    router's table shows the step, ask for `requests` decisions, and with
    `report` tell the router what each request saw (ReportOutcomes).
    `until_s` stops early, that many event-time seconds into the scenario."""
    history = synthetic.demo_scenario(scenario_seed)
    backends = [b.backend_id for b in history.backends]
    store = feature_store_pb2_grpc.FeatureStoreStub(channels["feature_store"])
    router = router_pb2_grpc.RouterStub(channels["router"])
    watcher = TableWatcher(router)
    echo(
        f"\nStreaming {len(history.points)} telemetry points of {len(backends)} backends "
        f"({history.points[-1].observed_at - synthetic.EPOCH:.0f} s of event time), "
        f"{requests} routing decisions per 10 s step.\n"
        "Columns per backend: offered load, observed latency -> forecast of the worst latency in the next "
        "5 minutes, breaker state.\n"
        "'~>' marks a forecast in shadow: the model has not yet passed the predictor's trust gate on this fleet's\n"
        "own labels, so the breakers run on observed latency (reactive) until it does.\n"
    )
    header = f"{'event':>6} | " + " | ".join(f"{b:<34}" for b in backends) + " | decisions"
    echo(header)
    echo("-" * len(header))
    steps: list[Step] = []
    last_states: dict[str, str] = {}
    last_mix = ""
    proven = False
    for i, (t, points) in enumerate(steps_of(history.points)):
        if until_s is not None and t - synthetic.EPOCH > until_s:
            break
        ingest(store, points)
        watcher.wait_for(backends, t)
        step = Step(t, points, dict(watcher.routes))
        decisions = [router.Decide(router_pb2.DecideRequest(request_id=f"{i}-{n}"), timeout=5) for n in range(requests)]
        step.add(decisions)
        if report:
            report_outcomes(router, decisions, points)
        steps.append(step)
        if watcher.table.model_proven != proven:
            proven = watcher.table.model_proven
            word = "MODEL PROVEN: its forecasts drive the breakers" if proven else "MODEL NO LONGER PROVEN"
            echo(f"{clock(t)} | {word} ({watcher.table.trust_reason})")
        states = {b: ("cold" if r.cold else STATE[r.state]) for b, r in step.routes.items()}
        mix = " ".join(sorted(step.actions))
        if i % print_every == 0 or states != last_states or mix != last_mix:
            echo(f"{clock(t)} | {step.cells(backends)} | {step.mix(backends)}")
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
            # The drain under way at the crossing, or one begun while over (a reactive one).
            drain = next((d for d in runs if d.start <= stretch[-1].t and d.end >= step.t), None)
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


def share(steps: Sequence[Step], backend_id: str, start: float, end: float) -> float | None:
    """The backend's share of the decisions of the steps in [start, end);
    None when there are none."""
    picked = total = 0
    for s in steps:
        if start <= s.t < end:
            picked += s.picks[backend_id]
            total += sum(s.picks.values())
    return picked / total if total else None


@dataclass(frozen=True)
class Shares:
    """A backend's share of decisions around one episode; None where no
    step falls in the span."""

    before: float | None  # 5 to 10 minutes before the crossing
    leading: float | None  # in the minute before it
    over: float | None  # while its latency was over the threshold
    after: float | None  # in the 5 minutes after its breaker closed

    def words(self) -> str:
        spans = [
            ("5-10 min before", self.before),
            ("in the minute before", self.leading),
            ("while over the threshold", self.over),
            ("in the 5 min after its breaker closed", self.after),
        ]
        return ", ".join(f"{v:.0%} {label}" for label, v in spans if v is not None)


def shares(steps: Sequence[Step], e: Episode, threshold_ms: float) -> Shares:
    over = [s for s in steps if s.t >= e.crossed_at and s.points[e.backend_id].latency_ms >= threshold_ms]
    last_over = max((s.t for s in over), default=e.crossed_at)
    closed = e.drain.end + STEP_S if e.drain is not None else None
    return Shares(
        before=share(steps, e.backend_id, e.crossed_at - 600, e.crossed_at - 300),
        leading=share(steps, e.backend_id, e.crossed_at - 60, e.crossed_at),
        over=share(steps, e.backend_id, e.crossed_at, last_over + STEP_S),
        after=None if closed is None else share(steps, e.backend_id, closed, closed + 300),
    )


def summarise(steps: list[Step], threshold_ms: float) -> None:
    print("\nSummary")
    found, false_drains = episodes(steps, threshold_ms)
    for e in found:
        if e.drain is None:
            lead = "its breaker never opened"
        elif e.drain.start <= e.crossed_at:
            lead = f"its breaker opened {e.lead_s:.0f} s BEFORE latency crossed {threshold_ms:.0f} ms"
        else:
            lead = f"its breaker opened {-(e.lead_s or 0):.0f} s AFTER latency crossed {threshold_ms:.0f} ms"
        print(
            f"- {e.backend_id}: latency crossed {threshold_ms:.0f} ms at {clock(e.crossed_at)} "
            f"(peak {e.peak_ms:.0f} ms); {lead}."
        )
        print(f"  Its share of decisions: {shares(steps, e, threshold_ms).words()}.")
        if e.drain is not None:
            print(
                f"  The breaker steered {e.drain.steered} requests off it; it received {e.served_while_over} while "
                f"over the threshold; its breaker closed again after {clock(e.drain.end)}."
            )
    if not found:
        print("- no backend crossed the threshold")
    if false_drains:
        listed = ", ".join(f"{d.backend_id} at {clock(d.start)} for {d.end - d.start + 10:.0f} s" for d in false_drains)
        moved = sum(d.steered for d in false_drains)
        print(
            f"False alarms (breaker opened, no breach followed): {len(false_drains)}: {listed}; "
            f"{moved} requests steered by them."
        )
    else:
        print("False alarms (breaker opened, no breach followed): none.")
    total = collections.Counter[str]()
    for s in steps:
        total.update(s.actions)
    print("Decisions by action: " + ", ".join(f"{a} {c}" for a, c in total.most_common()))


# -- second act: the learning loop ---------------------------------------------
