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
import collections
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

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
    pred = f"{route.predicted_latency_ms:4.0f}" if route.basis == router_pb2.FORECAST else "   -"
    state = STATE_SHORT[STATE[route.state]] if not route.cold else "cold"
    return f"{point.load:5.1f}rps {point.latency_ms:5.0f}ms ->{pred} {state:<9}"


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
        echo(f"  trainer: {progress.stage:<8} {progress.message}")
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
    )
    header = f"{'event':>6} | " + " | ".join(f"{b:<34}" for b in backends) + " | decisions"
    echo(header)
    echo("-" * len(header))
    steps: list[Step] = []
    last_states: dict[str, str] = {}
    last_mix = ""
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


# -- second act: the learning loop ---------------------------------------------

STEP_S = 10.0
# The fleet change: every backend's latency x 0.4, as after a move to faster
# hardware. Not x 3: the model reads the latency level among its inputs, so
# a slower fleet of the same shape leaves its log error at 0.16 -> 0.20 and
# the drift detector rightly stays quiet; latencies below any it learnt
# from (base 50-90 ms) keep its forecasts near 130 ms for backends that
# answer in 45, a log error of 1.0 (measured offline, v1 on this fleet).
FLEET_FACTOR = 0.4
# Event time of the unchanged fleet before the change: long enough that the
# scores before it no longer hold the labels of the first act's spikes.
CALM_S = 1200.0
CHANGED_S = 3 * 3600.0  # at most this much event time after it
SHOW_EVERY = 30  # steps between timeline lines when nothing happens
# How long the act waits for the trainer and ends after the rollback.
TRAIN_WAIT_S = 120.0
SETTLE_STEPS = 30  # after a promotion, before the operator's forced publish
AFTER_ROLLBACK_STEPS = 3
RETRAIN_DELAY_S = 900.0
RETRAIN_HISTORY_S = 1500.0
GATE_MIN_LABELS = 150
SCORE_WINDOW_S = 900.0
# The operator's worse model: the old fleet's kind of history, small.
FORCED_SOURCE = trainer_pb2.SyntheticSource(seed=2, duration_s=2 * 3600.0)
FORCED_TREES = 20


def service_args(run_dir: Path) -> dict[str, list[str]]:
    """Flags of `make run`'s services. Event time runs several hundred times
    faster than the wall clock here, so the loop's wall-clock settings
    shrink (evaluation tick, the trainer's polls, the gap between retrains);
    the event-time ones are sized to the scenario: a retrain 900 s after the
    drift on the last 1500 s of history (enough rows at a 300 s horizon, and
    all of it from the changed fleet), a gate at 150 shared labels (50 steps
    of 3 backends), scores over the last 900 s. The rest are the defaults.
    The predictor's --feature-store-addr comes from ACE_FEATURE_STORE_ADDR,
    which the constellation sets once the store listens."""
    return {
        "feature_store": ["--history-dir", str(run_dir / "history")],
        "predictor": [
            "--model-dir",
            str(run_dir / "models"),
            "--score-interval-s",
            "0.05",
            "--score-window-s",
            str(SCORE_WINDOW_S),
            "--gate-min-labels",
            str(GATE_MIN_LABELS),
        ],
        "router": ["--shadow-threshold-ms", "250"],
        "trainer": [
            "--retrain-on-drift",
            "true",
            "--retrain-delay-s",
            str(RETRAIN_DELAY_S),
            "--retrain-history-s",
            str(RETRAIN_HISTORY_S),
            "--retrain-min-gap-s",
            "600",
            "--drift-poll-s",
            "0.05",
        ],
    }


def fleet_change(start_at: float, seed: int) -> tuple[list[Point], float]:
    """The demo's three backends, calm for CALM_S after start_at, then
    FLEET_FACTOR times their latency at every load. Returns the points and
    the event time of the change."""
    backends = synthetic.demo_scenario(seed).backends
    calm = synthetic.simulate(backends, {}, duration_s=CALM_S, interval_s=STEP_S, seed=seed + 1)
    faster = [replace(b, base_latency_ms=b.base_latency_ms * FLEET_FACTOR) for b in backends]
    changed = synthetic.simulate(faster, {}, duration_s=CHANGED_S, interval_s=STEP_S, seed=seed + 2)
    offset = start_at - synthetic.EPOCH
    points = [p._replace(observed_at=p.observed_at + offset) for p in calm.points]
    points += [p._replace(observed_at=p.observed_at + offset + CALM_S) for p in changed.points]
    return points, start_at + CALM_S


def in_flight(points: dict[str, Point], picked: collections.Counter[str]) -> dict[str, int]:
    """Requests in flight per backend as a proxy in front of the whole fleet
    would count them: load x latency (Little's law), plus those this step
    has sent."""
    return {b: round(p.load * p.latency_ms / 1000.0) + picked[b] for b, p in points.items()}


def version_health(health: predictor_pb2.ModelHealth, role: int) -> predictor_pb2.VersionHealth | None:
    return next((v for v in health.versions if v.role == role), None)


class Versions:
    """Short names for model versions in order of appearance: v1, v2, ..."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def __call__(self, version: str) -> str:
        if version not in self._names:
            self._names[version] = f"v{len(self._names) + 1}"
        return self._names[version]

    def introduce(self, version: str) -> str:
        return f"{self(version)} ({version})"

    def shorten(self, text: str) -> str:
        """The text with every version named so far replaced by its short name."""
        for version, name in self._names.items():
            text = text.replace(version, name)
        return text


def scores(v: predictor_pb2.VersionHealth | None) -> str:
    if v is None or v.labels == 0:
        return "no labels yet"
    return f"MAE {v.mae_ms:.0f} ms, log error {v.log_mae:.2f} over {v.labels} labels"


class LoopAct:
    """Streams the fleet change and narrates the loop from GetModelHealth
    and the trainer's GetStatus, one look per step."""

    def __init__(self, channels: dict[str, grpc.Channel], admin: Sequence[tuple[str, str]], requests: int) -> None:
        self.store = feature_store_pb2_grpc.FeatureStoreStub(channels["feature_store"])
        self.router = router_pb2_grpc.RouterStub(channels["router"])
        self.predictor = predictor_pb2_grpc.PredictorStub(channels["predictor"])
        self.trainer = trainer_pb2_grpc.TrainerStub(channels["trainer"])
        self.admin = admin
        self.requests = requests
        self.names = Versions()
        self.receipts = collections.Counter[str]()
        self.fires = 0
        self.active = ""
        self.candidates: set[str] = set()
        self.forced = ""
        self.last_trained = ""  # the trainer's last result the act has shown
        self.judged: set[tuple[int, str, str]] = set()  # gate verdicts shown, by subject and reference
        # What the act has shown, in order: drift, shadowed, promoted, forced, rolled back ...
        self.shown: list[str] = []
        self.before: predictor_pb2.VersionHealth | None = None
        self.during: predictor_pb2.VersionHealth | None = None
        self.after: predictor_pb2.VersionHealth | None = None

    def health(self) -> predictor_pb2.ModelHealth:
        health: predictor_pb2.ModelHealth = self.predictor.GetModelHealth(
            predictor_pb2.GetModelHealthRequest(), timeout=5
        )
        return health

    def step(self, i: int, t: float, points: dict[str, Point], watcher: TableWatcher) -> Step:
        ingest(self.store, points)
        watcher.wait_for(sorted(points), t)
        step = Step(t, points, dict(watcher.routes))
        decisions = []
        sent = collections.Counter[str]()
        for n in range(self.requests):
            request = router_pb2.DecideRequest(request_id=f"loop-{i}-{n}", in_flight=in_flight(points, sent))
            decision = self.router.Decide(request, timeout=5)
            sent[decision.backend_id] += 1
            decisions.append(decision)
        step.add(decisions)
        self.receipts += report_outcomes(self.router, decisions, points)
        return step

    def follow_trainer(self, t: float) -> None:
        """Shows a drift retrain: its start, and its result once published.
        A retrain takes about a second of wall clock, less than one 10 s step
        of real time, so event time waits for it rather than run on."""
        status = self.trainer.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
        if status.last_result.version == self.last_trained and not status.training:
            return
        print(
            f"{clock(t):>7} | RETRAIN: the trainer retrains on the last {RETRAIN_HISTORY_S:.0f} s of the store's "
            f"history ({RETRAIN_DELAY_S:.0f} s of event time after the drift); event time waits for it"
        )
        deadline = time.monotonic() + TRAIN_WAIT_S
        while status.training and time.monotonic() < deadline:
            time.sleep(0.05)
            status = self.trainer.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
        r, m = status.last_result, status.last_result.metrics
        self.last_trained = r.version
        print(
            f"{clock(t):>7} |   {self.names.introduce(r.version)}: {m.train_rows} rows, held-out MAE "
            f"{m.mae_ms:.1f} ms (persistence {m.persistence_mae_ms:.1f} ms); published as a shadow: {r.published}"
        )

    def events(self, health: predictor_pb2.ModelHealth) -> list[str]:
        """Lines for what changed since the last look."""
        lines = []
        drift = health.error_drift
        active = version_health(health, predictor_pb2.ACTIVE)
        if drift.fires > self.fires:
            self.fires = drift.fires
            self.shown.append("drift")
            lines.append(
                f"DRIFT: the error detector fired (Page-Hinkley, lambda {drift.threshold:g}) on the label of "
                f"{clock(to_seconds(drift.last_fired_at))}; active {self.names(active.version) if active else '-'}: "
                f"{scores(active)}"
            )
        candidate = version_health(health, predictor_pb2.CANDIDATE)
        if candidate is not None and candidate.version not in self.candidates:
            self.candidates.add(candidate.version)
            self.shown.append("shadowed")
            lines.append(
                f"SHADOWED: {self.names(candidate.version)} runs beside the active version on every Predict, "
                f"scored but never answering; the gate judges it at {GATE_MIN_LABELS} shared labels"
            )
        gate = health.last_gate
        now = active.version if active else ""
        if now != self.active:
            was, self.active = self.active, now
            if was and gate.verdict == predictor_pb2.ROLL_BACK and gate.subject_version == was:
                self.shown.append("rolled back")
                lines.append(f"ROLLED BACK: {self.names(now)} is active again: {self.names.shorten(gate.reason)}")
            elif now in self.candidates:
                self.shown.append("promoted")
                self.during = version_health(health, predictor_pb2.PREVIOUS)
                lines.append(
                    f"PROMOTED: the gate found {self.names(now)} no worse on their shared labels; it replaces "
                    f"{self.names(was)}, which stays in shadow as the previous version"
                )
        key = (gate.verdict, gate.subject_version, gate.reference_version)
        if gate.verdict in (predictor_pb2.REFUSE, predictor_pb2.KEEP) and key not in self.judged:
            self.judged.add(key)
            subject, reference = self.names(gate.subject_version), self.names(gate.reference_version)
            reason = self.names.shorten(gate.reason)
            if gate.verdict == predictor_pb2.REFUSE:
                self.shown.append("refused")
                lines.append(f"REFUSED: {subject} stays in shadow against {reference}: {reason}")
            else:
                lines.append(f"rollback rule: {subject} stays active against {reference}: {reason}")
        return lines

    def force_publish(self, t: float) -> None:
        print(
            f"{clock(t):>7} | OPERATOR: Train on synthetic history like the old fleet's (seed 2, 2 h, "
            f"{FORCED_TREES} trees), published without shadow: a forced publish skips the gate"
        )
        result = train(self.trainer, FORCED_SOURCE, self.admin, n_estimators=FORCED_TREES, echo=lambda _line: None)
        self.forced = self.last_trained = result.version
        self.shown.append("forced")
        print(f"{clock(t):>7} |   {self.names.introduce(result.version)} is active; published: {result.published}")

    def run(self, points: list[Point], change_at: float) -> bool:
        backends = sorted({p.backend_id for p in points})
        watcher = TableWatcher(self.router)
        header = f"{'event':>7} | " + " | ".join(f"{b:<34}" for b in backends) + " | decisions, active model"
        print(header)
        print("-" * len(header))
        promoted_at: int | None = None
        ended_at: int | None = None
        self.last_trained = self.trainer.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5).last_result.version
        self.names(self.last_trained)
        for i, (t, step_points) in enumerate(steps_of(points)):
            if self.before is None and t > change_at:
                self.before = version_health(self.health(), predictor_pb2.ACTIVE)
                name = self.names(self.before.version) if self.before else "-"
                print(
                    f"{clock(t):>7} | FLEET CHANGE: every backend's latency x{FLEET_FACTOR:g} from now on; "
                    f"{name} so far: {scores(self.before)}"
                )
            step = self.step(i, t, step_points, watcher)
            self.follow_trainer(t)
            health = self.health()
            lines = self.events(health)
            for line in lines:
                print(f"{clock(t):>7} | {line}")
            if lines or i % SHOW_EVERY == 0:
                print(f"{clock(t):>7} | {step.cells(backends)} | {step.mix(backends)} | {self.names(self.active)}")
            if promoted_at is None and "promoted" in self.shown:
                promoted_at = i
            if promoted_at is not None and not self.forced and i >= promoted_at + SETTLE_STEPS:
                self.after = version_health(health, predictor_pb2.ACTIVE)
                self.force_publish(t)
            if ended_at is None and "rolled back" in self.shown:
                ended_at = i
            if ended_at is not None and i >= ended_at + AFTER_ROLLBACK_STEPS:
                break
        watcher.close()
        self.summarise()
        missing = [e for e in ("drift", "shadowed", "promoted", "forced", "rolled back") if e not in self.shown]
        if missing:
            print(
                f"The loop did not complete within {CHANGED_S:.0f} s of event time after the change: "
                f"no {', '.join(missing)}"
            )
        return not missing

    def summarise(self) -> None:
        print(
            f"\nLearning loop summary (active version's error over the last {SCORE_WINDOW_S:.0f} s of labels, "
            "GetModelHealth)"
        )
        for when, v in (
            ("before the change", self.before),
            ("after it, until replaced", self.during),
            ("after promotion", self.after),
        ):
            if v is not None:
                print(f"- {when:<24} {self.names(v.version)}: {scores(v)}")
        print(f"- events: {', '.join(self.shown) or 'none'}")
        print("- outcomes reported: " + ", ".join(f"{s} {c}" for s, c in self.receipts.most_common()))


def learning_loop(
    channels: dict[str, grpc.Channel], admin: Sequence[tuple[str, str]], *, start_at: float, requests: int, seed: int
) -> bool:
    points, change_at = fleet_change(start_at, seed)
    print(
        f"\nThe learning loop. The same fleet goes on and at {clock(change_at)} moves to faster hardware "
        f"(latency x{FLEET_FACTOR:g}).\n"
        "The predictor scores every forecast once its horizon has passed; a drift detector on that error makes the "
        "trainer\nretrain on recent history; the gate promotes the candidate only if it is no worse on the same "
        "labels. The proxy now\nsends its in-flight counts (least-loaded choice) and reports each request's "
        "latency and quality (ReportOutcomes).\n"
    )
    return LoopAct(channels, admin, requests).run(points, change_at)


def print_policy_shadow(router: router_pb2_grpc.RouterStub) -> None:
    """The router's policy shadow (--shadow-threshold-ms) on the scenario's
    decisions and the latencies the proxy reported for them."""
    report = router.GetPolicyShadow(router_pb2.GetPolicyShadowRequest(), timeout=5)
    print(
        f"Policy shadow, threshold {report.alternative_threshold_ms:.0f} ms against the live "
        f"{report.live_threshold_ms:.0f} ms: {report.differing} of {report.decisions} decisions would have gone "
        f"elsewhere; {report.reason}; {report.missing_alternative} left out for want of a request to the "
        f"alternative's backend near it, {report.missing_live} for want of the live one's latency."
    )


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
