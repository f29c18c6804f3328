"""`make run`'s second act, the learning loop: the same fleet moves to
faster hardware, the proxy goes on deciding and reporting what each request
saw, and the timeline says when the predictor's drift detector fires, when
the trainer's retrained candidate runs in shadow, when the gate promotes it,
and when an operator's forced publish of a worse model is rolled back."""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc

from ace.v1 import (
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common import synthetic
from services.common.telemetry import Point
from services.common.timeutil import to_seconds
from tools.demo_scenario import Step, TableWatcher, clock, ingest, report_outcomes, steps_of, train

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
    The demo's proxy reports a request's latency a few milliseconds after
    deciding it, hundreds of times sooner than that latency could have
    passed, so the router sees its reports run ahead of its clock and does
    not count requests from them (services/router/outstanding.py): the
    weighted rotation places, as for a caller that reports nothing. The
    predictor's --feature-store-addr comes from ACE_FEATURE_STORE_ADDR,
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
