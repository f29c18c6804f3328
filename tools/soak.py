"""`make soak`: the four services as processes on free loopback ports,
driven at the highest rate they sustain (closed loop: each worker sends its
next call as soon as the last one answered) with well-formed Decide, Ingest,
Predict and ReportOutcomes calls for a bounded time. Every decision's id is
reported back (its latency and a quality score), so the router's decision
log and outcome summaries, and the feature store's outcome log, are under
the same load. Prints one table: calls and failures per RPC (failures must
be 0; an outcome or point refused counts as one), the rate, latency
percentiles in the first and the last window of the run, each service's
resident memory after the warm-up, at each quarter of the run and at its
peak, and how many outcomes reached the feature store. Exits 1 on any
failed call or lost outcome.

python -m tools.soak [--duration-s S] [--workers N] [--backends B]
"""

from __future__ import annotations

import argparse
import itertools
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
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
    telemetry_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common.features import N_FEATURES, SCHEMA_VERSION
from services.common.timeutil import to_timestamp
from tools.constellation import ORDER, Constellation

RPCS = ("Decide", "Ingest", "Predict", "ReportOutcomes")
RSS_SAMPLES = 40  # readings of each service's RSS over the measured time
POINTS_PER_INGEST = 10
VECTORS_PER_PREDICT = 16
# Decisions a ReportOutcomes call reports at most: whatever has piled up
# since its last call, as a proxy batches them.
OUTCOMES_PER_REPORT = 500


class Refused(Exception):
    """A well-formed call answered OK that refused part of what it carried."""


@dataclass
class Calls:
    """One RPC's calls: latencies by the time they ended, and failures."""

    ended_at: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, started: float, error: str | None) -> None:
        ended = time.monotonic()
        with self.lock:
            if error is None:
                self.ended_at.append(ended)
                self.latency_ms.append((ended - started) * 1000.0)
            else:
                self.failures[error] = self.failures.get(error, 0) + 1

    def window(self, start: float, end: float) -> np.ndarray:
        at = np.asarray(self.ended_at)
        return np.asarray(self.latency_ms)[(at >= start) & (at < end)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample_rss(pids: dict[str, int], every_s: float, until: float) -> list[dict[str, int]]:
    """Each service's RSS every every_s seconds until `until`, the first at
    once: a growth that levels off and one that keeps on look alike in two
    readings."""
    samples = []
    next_at = time.monotonic()
    while True:
        samples.append({name: rss_kib(pid) for name, pid in pids.items()})
        next_at += every_s
        if next_at > until:
            return samples
        time.sleep(max(next_at - time.monotonic(), 0.0))


class Load:
    """Well-formed calls: each Ingest brings every backend's next points in
    event time, so nothing is refused as old or duplicate."""

    def __init__(self, constellation: Constellation, backends: int) -> None:
        self.channels = {name: grpc.insecure_channel(constellation.addr(name)) for name in ORDER}
        self.router = router_pb2_grpc.RouterStub(self.channels["router"])
        self.features = feature_store_pb2_grpc.FeatureStoreStub(self.channels["feature_store"])
        self.predictor = predictor_pb2_grpc.PredictorStub(self.channels["predictor"])
        self.backends = [f"soak-{i}" for i in range(backends)]
        self._tick = itertools.count()
        self._tick_lock = threading.Lock()
        rng = np.random.default_rng(1)
        self.predict = predictor_pb2.PredictRequest(
            vectors=[
                telemetry_pb2.FeatureVector(
                    backend_id=f"soak-{i}", schema_version=SCHEMA_VERSION, values=rng.uniform(0, 100, N_FEATURES)
                )
                for i in range(VECTORS_PER_PREDICT)
            ]
        )
        self.t0 = time.time() - 3600.0
        # Decisions waiting to be reported: (decision id, Decide's latency ms).
        self.decided: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self.outcomes_accepted = 0
        self._outcomes_lock = threading.Lock()

    def ingest(self) -> None:
        with self._tick_lock:
            tick = next(self._tick)
        backend = self.backends[tick % len(self.backends)]
        base = self.t0 + (tick // len(self.backends)) * POINTS_PER_INGEST
        points = [
            telemetry_pb2.TelemetryPoint(
                backend_id=backend,
                observed_at=to_timestamp(base + i),
                load=1.0,
                latency_ms=80.0 + 40.0 * ((tick + i) % 7),
                error_rate=0.0,
            )
            for i in range(POINTS_PER_INGEST)
        ]
        reply = self.features.Ingest(feature_store_pb2.IngestRequest(points=points), timeout=5)
        if reply.rejected:
            raise Refused(f"well-formed points refused: {reply.rejected[0].reason}")

    def prime(self, timeout_s: float = 60.0) -> None:
        """Gives every backend its first points and waits, on the router's
        watch, until the router knows the ones Decide names: until then a
        candidate is unknown and Decide refuses it."""
        for _ in self.backends:
            self.ingest()
        wanted = set(self.backends[:4])
        watch = self.router.WatchRoutingTable(router_pb2.WatchRoutingTableRequest(), timeout=timeout_s)
        known: set[str] = set()
        for table in watch:
            known |= {route.backend_id for route in table.backends}
            if wanted <= known:
                watch.cancel()
                return
        raise SystemExit(f"the router never learned of {sorted(wanted - known)}")

    def decide(self) -> None:
        started = time.monotonic()
        decision = self.router.Decide(
            router_pb2.DecideRequest(request_id="soak", candidates=self.backends[:4]), timeout=5
        )
        self.decided.put((decision.decision_id, (time.monotonic() - started) * 1000.0))

    def report_outcomes(self, wait_s: float = 0.05) -> bool:
        """Reports what has been decided since the last call; every outcome
        must be accepted. False when there was nothing to report (no call)."""
        batch: list[tuple[str, float]] = []
        try:
            batch.append(self.decided.get(timeout=wait_s))
            while len(batch) < OUTCOMES_PER_REPORT:
                batch.append(self.decided.get_nowait())
        except queue.Empty:
            if not batch:
                return False
        request = router_pb2.ReportOutcomesRequest(
            outcomes=[router_pb2.Outcome(decision_id=d, latency_ms=ms, quality=1.0) for d, ms in batch]
        )
        reply = self.router.ReportOutcomes(request, timeout=5)
        accepted = sum(1 for r in reply.receipts if r.status == router_pb2.ACCEPTED)
        with self._outcomes_lock:
            self.outcomes_accepted += accepted
        if accepted != len(batch):
            refused = next(r for r in reply.receipts if r.status != router_pb2.ACCEPTED)
            raise Refused(f"well-formed outcome refused: {refused.reason}")
        return True

    def report_the_rest(self) -> None:
        while not self.decided.empty():
            self.report_outcomes(wait_s=0.0)

    def outcomes_stored(self) -> int:
        """Latency outcomes the feature store holds for the soak's backends."""
        request = feature_store_pb2.ReadHistoryRequest(include_outcomes=True, skip_points=True)
        return sum(s.latency_count for batch in self.features.ReadHistory(request, timeout=30) for s in batch.outcomes)

    def wait_for_outcomes(self, timeout_s: float) -> int:
        """Outcomes stored once the router has forwarded every accepted one,
        or when timeout_s has passed."""
        deadline = time.monotonic() + timeout_s
        stored = self.outcomes_stored()
        while stored < self.outcomes_accepted and time.monotonic() < deadline:
            time.sleep(0.5)  # the router forwards every --outcome-flush-s (5 s)
            stored = self.outcomes_stored()
        return stored

    def predict_call(self) -> None:
        self.predictor.Predict(self.predict, timeout=5)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


def drive(call: Callable[[], bool | None], calls: Calls, until: float) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            if call() is False:
                continue  # nothing to send: no call made
        except grpc.RpcError as exc:
            calls.record(started, exc.code().name)
            continue
        except Refused:
            calls.record(started, "REFUSED")
            continue
        calls.record(started, None)


def train_first_model(constellation: Constellation) -> str:
    with grpc.insecure_channel(constellation.addr("trainer")) as channel:
        request = trainer_pb2.TrainRequest(
            synthetic=trainer_pb2.SyntheticSource(seed=1, backends=3, duration_s=3600.0), publish=True, n_estimators=20
        )
        stub = trainer_pb2_grpc.TrainerStub(channel)
        for progress in stub.Train(request, timeout=300, metadata=constellation.admin_metadata()):
            if progress.HasField("result"):
                if not progress.result.published:
                    raise SystemExit(f"could not publish a first model: {progress.result.publish_error}")
                return str(progress.result.version)
    raise SystemExit("the trainer sent no result")


def percentiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    p50, p99 = np.percentile(values, [50, 99])
    return f"{p50:.2f} / {p99:.2f}"


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> int:
    shutil.rmtree(args.run_dir, ignore_errors=True)
    extra_args = {
        "predictor": ["--model-dir", str(args.run_dir / "models")],
        # A history, so that the outcome summaries the router forwards are
        # kept (without one the store refuses them) and Ingest writes to disk.
        "feature_store": ["--history-dir", str(args.run_dir / "history")],
        # A log that fills within the run, so that the router's memory is
        # seen to level off at its cap rather than assumed to.
        "router": ["--decision-log-max", str(args.decision_log_max)],
    }
    constellation = Constellation(args.run_dir, extra_args=extra_args, echo=lambda _line: None)
    with constellation:
        version = train_first_model(constellation)
        load = Load(constellation, args.backends)
        load.prime()
        calls = {rpc: Calls() for rpc in RPCS}
        work = {
            "Decide": load.decide,
            "Ingest": load.ingest,
            "Predict": load.predict_call,
            "ReportOutcomes": load.report_outcomes,
        }
        start = time.monotonic()
        until = start + args.warmup_s + args.duration_s
        threads = [
            threading.Thread(target=drive, args=(work[rpc], calls[rpc], until), name=f"soak-{rpc}-{i}", daemon=True)
            for rpc in RPCS
            for i in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.warmup_s)  # the run's own clock: the warm-up is a span of time, not an event
        pids = {name: constellation.processes[name].popen.pid for name in ORDER}
        samples = sample_rss(pids, args.duration_s / RSS_SAMPLES, until)
        for thread in threads:
            thread.join()
        samples.append({name: rss_kib(pid) for name, pid in pids.items()})
        # Every decision reported, then every accepted outcome in the store.
        try:
            load.report_the_rest()
        except (grpc.RpcError, Refused) as exc:
            echo(f"reporting the last decisions failed: {exc}")
        stored = load.wait_for_outcomes(timeout_s=30.0)
        load.close()
    measured_from = start + args.warmup_s
    window_s = max(args.duration_s * args.window_fraction, 1.0)
    echo(
        f"soak: {args.duration_s:g} s after a {args.warmup_s:g} s warm-up, {args.workers} closed-loop worker(s) per RPC, "
        f"{args.backends} backends, model {version}; loopback, {POINTS_PER_INGEST} points per Ingest, "
        f"{VECTORS_PER_PREDICT} vectors per Predict, every decision reported back "
        f"(up to {OUTCOMES_PER_REPORT} per ReportOutcomes)"
    )
    echo("")
    echo("| RPC | calls | failures | calls/s | p50 / p99 ms, first window | p50 / p99 ms, last window |")
    echo("|---|---:|---:|---:|---|---|")
    failed = 0
    for rpc in RPCS:
        c = calls[rpc]
        measured = c.window(measured_from, until)
        first = c.window(measured_from, measured_from + window_s)
        last = c.window(until - window_s, until)
        n_failed = sum(c.failures.values())
        failed += n_failed
        failures = f"{n_failed}" + (f" ({c.failures})" if n_failed else "")
        echo(
            f"| {rpc} | {measured.size} | {failures} | {measured.size / args.duration_s:.0f} | "
            f"{percentiles(first)} | {percentiles(last)} |"
        )
    echo("")
    quarters = [samples[round(q * (len(samples) - 1) / 4)] for q in range(5)]
    echo(
        "| service | RSS after warm-up MiB | at 1/4 | at 1/2 | at 3/4 | at end | growth MiB "
        "| growth in the second half MiB | highest MiB |"
    )
    echo("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ORDER:
        mib = [q[name] / 1024 for q in quarters]
        highest = max(sample[name] for sample in samples) / 1024
        cells = " | ".join(f"{m:.1f}" for m in mib)
        echo(f"| {name} | {cells} | {mib[4] - mib[0]:+.1f} | {mib[4] - mib[2]:+.1f} | {highest:.1f} |")
    echo("")
    echo(f"outcomes accepted by the router: {load.outcomes_accepted}; stored in the feature store: {stored}")
    if failed:
        echo(f"FAILED: {failed} well-formed calls failed")
        return 1
    if stored != load.outcomes_accepted:
        echo(f"FAILED: {load.outcomes_accepted - stored} accepted outcomes did not reach the feature store")
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__)
    p.add_argument("--duration-s", type=float, default=180.0, help="measured time, after the warm-up")
    p.add_argument("--warmup-s", type=float, default=20.0, help="load before memory is first measured")
    p.add_argument("--workers", type=int, default=2, help="closed-loop workers per RPC")
    p.add_argument("--backends", type=int, default=50, help="backends the telemetry covers")
    p.add_argument("--window-fraction", type=float, default=0.2, help="share of the run each latency window covers")
    p.add_argument("--run-dir", type=Path, default=Path(".run/soak"), help="wiped first")
    p.add_argument(
        "--decision-log-max",
        type=int,
        default=50_000,
        help="the router's --decision-log-max (its default, 2 million, takes over an hour to fill at the soak's rate)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
