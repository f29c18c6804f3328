"""`python -m tools.chaos`: proves graceful degradation. Drives Decide
traffic through the router while it injects five faults, one at a time, and
restores each:

1. latency_spike     a backend's telemetry turns into a latency spike: the
                     router must move traffic away and say why, then take
                     the backend back once it is calm;
2. predictor_killed  every Decide is still answered, on the reactive
                     fallback, named in `reason`; the predictor comes back
                     with the active version it had;
3. feature_store_killed  Decide is answered from the last known table; the
                     router re-subscribes when the store returns;
4. corrupted_model   a corrupted model published to every predictor replica
                     is rejected, the active version is unchanged and
                     Predict never fails meanwhile;
5. good_model        a new model trained and published under load: no
                     failed call during the swap, and every replica and
                     the router end on the new version.

The run feeds its own three backends (chaos-a, -b, -c) with telemetry in
accelerated event time, so it needs nothing else. Kills go through a Faults
implementation (tools.faults): local processes or Kubernetes pods. Every
wait is bounded and so is the call rate; the whole run stops after
--budget-s. It prints a report per fault and exits 1 if an invariant broke.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common import addresses, admin, config
from services.common.features import FEATURE_NAMES, N_FEATURES, SCHEMA_VERSION
from services.common.points import to_message
from services.common.telemetry import Point
from services.common.timeutil import to_seconds
from tools.demo_scenario import TableWatcher
from tools.faults import FaultError, Faults, KubernetesFaults, LocalFaults

BACKENDS = ("chaos-a", "chaos-b", "chaos-c")
SPIKED = "chaos-b"
STEP_S = 10.0  # event time between two telemetry points of a backend
# Wall time between two feed steps: 200 s of event time a second, so that
# a breaker's minutes pass in a few seconds while the load runs.
PACE_S = 0.05
DECIDE_RATE = 200.0  # Decide calls a second, at most
PREDICT_RATE = 100.0
# The most of the decisions the spiked backend may keep while its spike
# lasts: three quarters of an equal share.
MAX_SPIKED_SHARE = 0.75 / len(BACKENDS)
HOLD_STEPS = 20  # steps a fault's effect is held and watched before it is undone
MAX_CALLS = 200_000  # of each kind, over the whole run
ACTIONS = ("PRIMARY", "REROUTE", "ROUND_ROBIN", "LAST_RESORT")
ACTION_NAME = {v: k for k, v in router_pb2.Action.items()}
# Bases of a decision made with the predictor's forecast in hand: driving the
# breaker, below the observed latency the breaker then runs on, or in shadow
# while the trust gate has not passed the model yet.
WITH_MODEL = (router_pb2.FORECAST, router_pb2.OBSERVED_OVER_FORECAST, router_pb2.MODEL_UNPROVEN)
REACTIVE = "reactive fallback"
STALE_TABLE = "feature store unreachable"


@dataclass(frozen=True)
class Call:
    """One Decide as the run saw it."""

    at: float  # monotonic seconds
    ok: bool
    backend_id: str = ""
    action: str = ""
    basis: int = 0
    state: int = 0
    reason: str = ""
    skipped: tuple[str, ...] = ()
    model_version: str = ""
    error: str = ""


class Recorder:
    """Every Decide outcome, with a condition so the run can wait for the
    next one instead of polling."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.calls: list[Call] = []

    def add(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def since(self, start: float) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.at >= start]

    def first(self, predicate: Callable[[Call], bool], start: float) -> Call | None:
        return next((c for c in self.since(start) if predicate(c)), None)

    def wait_next(self, timeout_s: float) -> None:
        with self._cond:
            count = len(self.calls)
            self._cond.wait_for(lambda: len(self.calls) > count, timeout_s)


class Paced(threading.Thread):
    """Calls `once` at most `rate` times a second until stopped or until
    MAX_CALLS."""

    def __init__(self, name: str, rate: float, once: Callable[[int], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._interval = 1.0 / rate
        self._once = once
        self._halt = threading.Event()

    def run(self) -> None:
        for n in range(MAX_CALLS):
            if self._halt.wait(self._interval):
                return
            self._once(n)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


@dataclass
class PredictLoad:
    """Predict calls on the predictor (through its Service) for as long as
    a fault lasts; none may fail."""

    stub: predictor_pb2_grpc.PredictorStub
    request: predictor_pb2.PredictRequest
    calls: int = 0
    failed: list[str] = field(default_factory=list)

    def once(self, _n: int) -> None:
        self.calls += 1
        try:
            self.stub.Predict(self.request, timeout=5)
        except grpc.RpcError as exc:
            self.failed.append(f"{exc.code().name}: {exc.details()}")


class Feed:
    """Telemetry for the run's backends, one point each per step of event
    time: calm, or a spike on the backend in `spike`."""

    def __init__(
        self, stub: feature_store_pb2_grpc.FeatureStoreStub, watcher: TableWatcher, start: float, seed: int
    ) -> None:
        self._stub = stub
        self._watcher = watcher
        self._rng = np.random.default_rng(seed)
        self.t = start
        self.spike: str | None = None
        self.steps = 0
        self.undelivered = 0  # steps the feature store did not take (it was down)

    def point(self, backend_id: str) -> Point:
        noise = float(self._rng.normal())
        if backend_id == self.spike:
            return Point(backend_id, self.t, 160.0 + 5 * noise, 1500.0 + 50 * noise, 0.05)
        return Point(backend_id, self.t, 20.0 + noise, 70.0 + 3 * noise, 0.001)

    def step(self) -> None:
        """Sends the next step and waits (boundedly) until the router's table
        shows it; a feature store that is down only counts as undelivered."""
        self.t += STEP_S
        self.steps += 1
        request = feature_store_pb2.IngestRequest(points=[to_message(self.point(b)) for b in BACKENDS])
        try:
            self._stub.Ingest(request, timeout=2)
        except grpc.RpcError:
            self.undelivered += 1
            return
        # A router that is resubscribing shows it at a later step.
        with contextlib.suppress(TimeoutError):
            self._watcher.wait_for(list(BACKENDS), self.t, timeout_s=2)


@dataclass
class Report:
    fault: str
    calls: int = 0
    failed: int = 0
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    detect_s: float | None = None
    recover_s: float | None = None
    broken: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, calls: Sequence[Call]) -> None:
        self.calls = len(calls)
        self.failed = sum(not c.ok for c in calls)
        self.actions = collections.Counter(c.action for c in calls if c.ok)
        errors = collections.Counter(c.error for c in calls if not c.ok)
        if self.failed:
            self.broken.append(f"{self.failed} Decide calls failed: {dict(errors.most_common(3))}")


class Chaos:
    def __init__(self, args: argparse.Namespace, faults: Faults, echo: Callable[[str], None] = print) -> None:
        self.args = args
        self.faults = faults
        self.echo = echo
        self.deadline = time.monotonic() + args.budget_s
        self.channels = {
            name: grpc.insecure_channel(getattr(args, f"{name}_addr"))
            for name in ("feature_store", "predictor", "router", "trainer")
        }
        self.router = router_pb2_grpc.RouterStub(self.channels["router"])
        self.features = feature_store_pb2_grpc.FeatureStoreStub(self.channels["feature_store"])
        self.predictor = predictor_pb2_grpc.PredictorStub(self.channels["predictor"])
        self.trainer = trainer_pb2_grpc.TrainerStub(self.channels["trainer"])
        self.admin = admin.client_metadata(args.admin_token_file)
        self.recorder = Recorder()
        self.watcher = TableWatcher(self.router)
        self.feed = Feed(self.features, self.watcher, self._start_time(), args.seed)
        self.decide_load = Paced("decide", DECIDE_RATE, self._decide)
        self._next_step = time.monotonic()

    # --- plumbing ---

    def _start_time(self) -> float:
        """Event time to start from: now, or just after what an earlier run
        left in the windows, which would refuse anything older."""
        try:
            known = self.features.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=10, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise FaultError(f"feature store unreachable at the start: {exc.code().name}") from exc
        newest = [to_seconds(v.as_of) for v in known.vectors if v.backend_id in BACKENDS]
        return max([float(int(time.time())), *newest])

    def _decide(self, n: int) -> None:
        at = time.monotonic()
        try:
            d = self.router.Decide(router_pb2.DecideRequest(request_id=f"chaos-{n}", candidates=BACKENDS), timeout=5)
        except grpc.RpcError as exc:
            self.recorder.add(Call(at, False, error=f"{exc.code().name}: {exc.details()}"))
            return
        self.recorder.add(
            Call(
                at,
                True,
                backend_id=d.backend_id,
                action=ACTION_NAME[d.action],
                basis=d.basis,
                state=d.breaker_state,
                reason=d.reason,
                skipped=tuple(d.skipped),
                model_version=d.model_version,
            )
        )

    def step(self) -> None:
        """One feed step, at most one per PACE_S."""
        self.feed.step()
        self._next_step = max(self._next_step + PACE_S, time.monotonic())
        time.sleep(max(0.0, self._next_step - time.monotonic()))

    def hold(self, steps: int = HOLD_STEPS) -> None:
        for _ in range(steps):
            self.step()

    def remaining(self) -> float:
        return float(self.deadline - time.monotonic())

    def until(self, predicate: Callable[[Call], bool], start: float, timeout_s: float) -> Call | None:
        """Steps the feed until a Decide from `start` on satisfies the
        predicate, or the time (and the run's budget) is up."""
        stop = time.monotonic() + min(timeout_s, max(self.remaining(), 0.0))
        while time.monotonic() < stop:
            found = self.recorder.first(predicate, start)
            if found is not None:
                return found
            self.step()
        return self.recorder.first(predicate, start)

    def publish_targets(self) -> list[addresses.Target]:
        return addresses.resolve(self.args.predictor_publish_addrs or self.args.predictor_addr)

    def active_versions(self, timeout_s: float = 60.0) -> dict[str, str]:
        """The active version of every predictor replica, by address (the
        status name when it has none or cannot be reached in time); waits
        for replicas that are coming back. A recreated pod has a new
        address, so compare with `same_versions`."""
        versions: dict[str, str] = {}
        for target in self.publish_targets():
            if target.error:
                versions[target.address] = f"unresolved: {target.error}"
                continue
            with grpc.insecure_channel(target.address) as channel:
                try:
                    info = predictor_pb2_grpc.PredictorStub(channel).GetActiveModel(
                        predictor_pb2.GetActiveModelRequest(), timeout=timeout_s, wait_for_ready=True
                    )
                    versions[target.address] = info.metadata.version
                except grpc.RpcError as exc:
                    versions[target.address] = f"{exc.code().name}"
        return versions

    def predict_load(self) -> PredictLoad:
        vectors = self.features.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=BACKENDS), timeout=10)
        return PredictLoad(self.predictor, predictor_pb2.PredictRequest(vectors=vectors.vectors))

    @staticmethod
    def _forecast_everywhere(calls: list[Call]) -> bool:
        served = {c.backend_id for c in calls if c.ok and c.basis in WITH_MODEL and c.action == "PRIMARY"}
        return served >= set(BACKENDS)

    def warm(self, what: str, timeout_s: float = 60.0) -> bool:
        """Steps until every backend has been chosen with the predictor's
        forecast in hand (driving its breaker, or in shadow while the model
        is unproven on this fleet): the steady state each fault starts from."""
        start = time.monotonic()
        stop = start + min(timeout_s, max(self.remaining(), 0.0))
        while time.monotonic() < stop:
            if self._forecast_everywhere(self.recorder.since(start)):
                return True
            self.step()
        self.echo(f"  not warm {what}: no decision with a forecast for every backend within {timeout_s:g} s")
        return False

    # --- the run ---

    def ensure_model(self) -> None:
        try:
            self.predictor.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=30, wait_for_ready=True)
            return
        except grpc.RpcError as exc:
            # On Kubernetes a predictor without a model is not ready, so the
            # Service has no endpoint and the call times out instead.
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        self.echo("no active model: training one on synthetic history first")
        result = self.train(seed=1)
        if not result.published:
            raise FaultError(f"could not publish a first model: {result.publish_error}")

    def train(self, seed: int) -> trainer_pb2.TrainResult:
        request = trainer_pb2.TrainRequest(
            synthetic=trainer_pb2.SyntheticSource(seed=seed, duration_s=3 * 3600.0), publish=True
        )
        result = trainer_pb2.TrainResult()
        for progress in self.trainer.Train(request, timeout=max(self.remaining(), 1.0), metadata=self.admin):
            if progress.HasField("result"):
                result = progress.result
        return result

    def run(self) -> list[Report]:
        self.ensure_model()
        self.decide_load.start()
        reports: list[Report] = []
        try:
            if not self.warm("at the start", 90):
                raise FaultError("the router never decided on forecasts for the chaos backends")
            for scenario in (
                self.latency_spike,
                self.predictor_killed,
                self.feature_store_killed,
                self.corrupted_model,
                self.good_model,
            ):
                name = scenario.__name__
                self.echo(f"fault: {name} ...")
                start = time.monotonic()
                report = Report(name)
                try:
                    scenario(report, start)
                except (FaultError, grpc.RpcError) as exc:
                    report.broken.append(f"could not run: {exc}")
                report.count(self.recorder.since(start))
                reports.append(report)
                self.echo(f"  {'ok' if not report.broken else 'BROKEN: ' + '; '.join(report.broken)}")
                if self.remaining() <= 0:
                    break
        finally:
            self.decide_load.stop()
            self.watcher.close()
            for channel in self.channels.values():
                channel.close()
        return reports

    def latency_spike(self, report: Report, start: float) -> None:
        self.feed.spike = SPIKED
        hit = self.until(
            lambda c: c.ok and (SPIKED in c.skipped or (c.backend_id == SPIKED and c.state == router_pb2.OPEN)),
            start,
            60,
        )
        if hit is None:
            report.broken.append(f"{SPIKED}'s breaker never opened")
            self.feed.spike = None
            return
        report.detect_s = hit.at - start
        spiked_at = self.feed.t
        report.notes.append(f"why, as the router said it: {hit.reason}")
        self.hold()  # the backend's share must stay cut while the spike lasts
        during = [c for c in self.recorder.since(hit.at) if c.ok]
        cut = sum(c.backend_id == SPIKED for c in during) / max(len(during), 1)
        # Plain Decide (no in-flight counts) is a weighted rotation: the open
        # breaker keeps the backend's share (--open-share 1), and its
        # capacity estimate, capped while it is slow and the others are not
        # (--overload-guard), is what cuts it.
        if cut > MAX_SPIKED_SHARE:
            report.broken.append(
                f"{SPIKED} kept {cut:.0%} of decisions during its spike (at most {MAX_SPIKED_SHARE:.0%})"
            )
        report.notes.append(
            f"{SPIKED}'s share of decisions during its spike: {cut:.0%} (an equal share: {1 / len(BACKENDS):.0%})"
        )
        self.feed.spike = None
        calm, calm_t = time.monotonic(), self.feed.t
        back = self.until(
            lambda c: c.ok and c.backend_id == SPIKED and c.action == "PRIMARY" and c.state == router_pb2.CLOSED,
            calm,
            90,
        )
        if back is None:
            report.broken.append(f"{SPIKED} was not taken back after its spike")
            return
        report.recover_s = back.at - calm
        report.notes.append(
            f"in event time: breaker opened at the spike's first point; spike held {calm_t - spiked_at:.0f} s; taken back "
            f"{self.feed.t - calm_t:.0f} s after the calm telemetry began (recovery is timed from it)"
        )

    def _kill_and_return(self, report: Report, start: float, service: str, degraded: Callable[[Call], bool]) -> None:
        killed = self.faults.kill(service)
        report.notes.append(f"killed {', '.join(killed)}")
        hit = self.until(degraded, start, 30)
        if hit is None:
            report.broken.append(f"no decision showed the {service} gone")
            return
        report.detect_s = hit.at - start
        report.notes.append(f"while it was gone: {hit.reason}")
        back = self.until(lambda c: c.ok and not degraded(c), hit.at, 90)
        if back is None:
            report.broken.append(f"the router did not recover from the {service} kill")
            return
        report.recover_s = back.at - start
        self.hold()  # and the load goes on with the service back

    def predictor_killed(self, report: Report, start: float) -> None:
        before = self.active_versions()
        self._kill_and_return(
            report,
            start,
            "predictor",
            lambda c: c.ok and c.basis == router_pb2.OBSERVED_LATENCY and REACTIVE in c.reason,
        )
        after = self.active_versions()
        report.notes.append(
            f"active version before {sorted(set(before.values()))}, after {sorted(set(after.values()))}"
        )
        if not same_versions(before, after):
            report.broken.append(f"the predictor came back with {after}, not {before}")
        if not report.broken and not self.warm("after the predictor returned"):
            report.broken.append("forecasts did not return for every backend")

    def feature_store_killed(self, report: Report, start: float) -> None:
        undelivered = self.feed.undelivered
        self._kill_and_return(report, start, "feature_store", lambda c: c.ok and STALE_TABLE in c.reason)
        report.notes.append(f"{self.feed.undelivered - undelivered} telemetry steps were lost while it was down")
        if not report.broken and not self.warm("after the feature store returned"):
            report.broken.append("forecasts did not return for every backend after re-subscribing")

    def corrupted_model(self, report: Report, start: float) -> None:
        before = self.active_versions()
        load = self.predict_load()
        predicts = Paced("predict", PREDICT_RATE, load.once)
        predicts.start()
        try:
            for target in self.publish_targets():
                for kind, request in corrupted_models(f"chaos-corrupt-{int(time.time())}"):
                    sent = time.monotonic()
                    outcome = publish_once(target, request, self.admin)
                    report.detect_s = max(report.detect_s or 0.0, time.monotonic() - sent)
                    if outcome != "INVALID_ARGUMENT":
                        report.broken.append(f"{target.address} answered {outcome} to {kind}")
                    report.notes.append(f"{target.address}: {kind} -> {outcome}")
            report.notes.append("detect: the slowest of the rejections")
            self.hold()  # traffic and Predict calls go on after the rejections
        finally:
            predicts.stop()
        after = self.active_versions()
        if not same_versions(before, after):
            report.broken.append(f"active versions changed from {before} to {after}")
        report.notes.append(f"Predict meanwhile: {load.calls} calls, {len(load.failed)} failed")
        if load.failed:
            report.broken.append(f"{len(load.failed)} Predict calls failed: {load.failed[:2]}")

    def good_model(self, report: Report, start: float) -> None:
        load = self.predict_load()
        predicts = Paced("predict", PREDICT_RATE, load.once)
        predicts.start()
        outcome: list[trainer_pb2.TrainResult] = []
        training = threading.Thread(target=lambda: outcome.append(self.train(seed=2)), daemon=True)
        try:
            training.start()
            while training.is_alive() and self.remaining() > 0:
                self.step()
            if outcome:
                self._swapped(report, start, outcome[0])
            else:
                report.broken.append("training did not finish")
        finally:
            predicts.stop()
        report.notes.append(f"Predict meanwhile: {load.calls} calls, {len(load.failed)} failed")
        if load.failed:
            report.broken.append(f"{len(load.failed)} Predict calls failed: {load.failed[:2]}")

    def _swapped(self, report: Report, start: float, result: trainer_pb2.TrainResult) -> None:
        report.notes.append(
            f"published {result.version} to "
            + ", ".join(f"{r.address} ({'ok' if r.published else r.error})" for r in result.replicas)
        )
        if not result.published:
            report.broken.append(f"the new model was not published: {result.publish_error}")
            return
        # The router's table names the version whose forecasts it holds,
        # driving the breakers or in shadow until the trust gate passes it
        # (a decision names it only in the first case).
        stop = time.monotonic() + min(30.0, max(self.remaining(), 0.0))
        while self.watcher.table.model_version != result.version and time.monotonic() < stop:
            self.step()
        if self.watcher.table.model_version != result.version:
            report.broken.append(f"the router never held forecasts of {result.version}")
        else:
            report.detect_s = time.monotonic() - start
            report.notes.append("detect: from the start of the training to the router's table naming the new version")
        after = self.active_versions()
        if set(after.values()) != {result.version}:
            report.broken.append(f"replicas serve {after}, not {result.version} everywhere")


def same_versions(before: dict[str, str], after: dict[str, str]) -> bool:
    """As many replicas, serving the same versions: addresses may differ."""
    return sorted(before.values()) == sorted(after.values())


def corrupted_models(version: str) -> Iterator[tuple[str, list[predictor_pb2.PublishModelRequest]]]:
    """Two broken publishes: bytes that are no ONNX model (their checksum
    right), and a checksum that does not match the bytes."""
    garbage = b"\x08\x07this is not an onnx model" * 64
    meta = predictor_pb2.ModelMetadata(
        version=version,
        schema_version=SCHEMA_VERSION,
        feature_names=FEATURE_NAMES,
        size_bytes=len(garbage),
        reference_inputs=[0.0] * N_FEATURES,
        reference_outputs=[100.0],
        reference_tolerance_ms=0.01,
        horizon_s=300.0,
    )
    meta.sha256 = hashlib.sha256(garbage).hexdigest()
    yield (
        "bytes that are no ONNX model",
        [
            predictor_pb2.PublishModelRequest(metadata=meta),
            predictor_pb2.PublishModelRequest(chunk=garbage),
        ],
    )
    wrong = predictor_pb2.ModelMetadata()
    wrong.CopyFrom(meta)
    wrong.sha256 = "0" * 64
    yield (
        "a checksum that does not match",
        [
            predictor_pb2.PublishModelRequest(metadata=wrong),
            predictor_pb2.PublishModelRequest(chunk=garbage),
        ],
    )


def publish_once(
    target: addresses.Target,
    request: list[predictor_pb2.PublishModelRequest],
    call_metadata: Sequence[tuple[str, str]] = (),
) -> str:
    """The status name a replica answers a publish with ("OK" if it took it)."""
    if target.error:
        return target.error
    with grpc.insecure_channel(target.address) as channel:
        try:
            predictor_pb2_grpc.PredictorStub(channel).PublishModel(
                iter(request), timeout=30, wait_for_ready=True, metadata=call_metadata
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


def table(reports: Sequence[Report]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    head = ["fault", "calls", "failed", *ACTIONS, "detect s", "recover s", "invariant"]
    rows = [
        [
            r.fault,
            str(r.calls),
            str(r.failed),
            *(str(r.actions.get(a, 0)) for a in ACTIONS),
            seconds(r.detect_s),
            seconds(r.recover_s),
            "held" if not r.broken else "BROKEN",
        ]
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in [head, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def print_report(reports: Sequence[Report], echo: Callable[[str], None] = print) -> None:
    echo("\nChaos report (calls are Decide calls through the router; times in wall-clock seconds from the fault)\n")
    echo(table(reports))
    for r in reports:
        echo(f"\n{r.fault}:")
        for line in r.notes + [f"BROKEN: {b}" for b in r.broken]:
            echo(f"  - {line}")


def check_loopback(args: argparse.Namespace) -> None:
    """Local faults only ever target this machine."""
    for name in ("feature_store", "predictor", "router", "trainer"):
        host, port = addresses.split(getattr(args, f"{name}_addr"))
        for found in addresses.dns(host, port):
            if not ipaddress.ip_address(found.split("%")[0]).is_loopback:
                raise FaultError(
                    f"--{name.replace('_', '-')}-addr resolves to {found}: local chaos targets loopback only"
                )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    for name in ("feature_store", "predictor", "router", "trainer"):
        config.add_address(p, name)
    config.option(
        p,
        "--predictor-publish-addrs",
        env="ACE_PREDICTOR_PUBLISH_ADDRS",
        cast=str,
        default="",
        help="every predictor replica, as the trainer publishes to them (empty: --predictor-addr)",
    )
    p.add_argument("--faults", choices=("local", "kubernetes"), default="local", help="how services are killed")
    p.add_argument("--run-dir", type=Path, default=Path(".run"), help="local faults: the run dir with pids/")
    p.add_argument("--budget-s", type=float, default=240.0, help="the whole run stops after this many seconds")
    p.add_argument("--seed", type=int, default=7, help="seed of the telemetry noise")
    admin.add_client_option(p)
    return p


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    args = parser().parse_args(argv)
    try:
        faults: Faults
        if args.faults == "local":
            check_loopback(args)
            faults = LocalFaults(args.run_dir)
        else:
            faults = KubernetesFaults.in_cluster()
        reports = Chaos(args, faults, echo).run()
    except (FaultError, grpc.RpcError, socket.gaierror, ValueError) as exc:
        echo(f"chaos run could not proceed: {exc}")
        return 1
    print_report(reports, echo)
    broken = [r for r in reports if r.broken]
    if broken or len(reports) < 5:
        echo(f"\nINVARIANTS BROKEN in {len(broken)} of {len(reports)} faults ({5 - len(reports)} not run)")
        return 1
    echo("\nevery invariant held: 0 failed Decide calls across all five faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
