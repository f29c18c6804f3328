"""Real telemetry, no simulation: recorded series streamed through the same
breakers (ACE's and the reactive one) as a backend's telemetry.

Nezha (OnlineBoutique, 1-minute rows per pod, 56 injected faults): each pod
is a backend (load = PodWorkload(Ops), latency = PodServerLatencyP95(s) x
1000; the success-rate column is all zeros, so the error rate is 0). Pods
differ a hundredfold in latency, so each pod's latency is scaled so that the
breaker's threshold (300 ms) stands for twice the pod's fault-free p99 on
the tuning day, and its load is divided by its median load of that day.
ACE's model is trained with the trainer's code on the tuning day
(2022-08-22) and reported on 2022-08-23. The faults arrive without warning,
so this measures reaction, not foresight.

NAB (ec2_request_latency_system_failure, 5-minute samples): one backend;
the threshold stands for 1.25 x the highest value of NAB's probationary
period (the first 15% of the file, the part a detector may tune on), and
the series carries no load, so load is held at 1. With 5-minute samples
the 5-minute horizon is a single sample: this too shows reaction."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.foresight import model
from bench.foresight.routers import AceRouter, Transition
from bench.foresight.sim import Telemetry
from bench.foresight.traffic import DATA_DIR
from services.common.telemetry import Point
from services.common.window import WindowLimits
from services.predictor.model import LoadedModel
from services.router.policy import Settings
from services.trainer.train import TrainedModel

Floats = npt.NDArray[np.float64]

TUNE_DAY, REPORT_DAY = "2022-08-22", "2022-08-23"
STEP_S = 60.0
THRESHOLD_MS = 300.0
P99_MULTIPLE = 2.0  # a pod's threshold is this many times its fault-free p99
# A fault is isolated when the previous one is at least this much earlier.
ISOLATION_S = 600.0
# A reaction counts until the next injection, and at most this long.
FAULT_EFFECT_S = 600.0
FAULT_SPAN_S = 900.0  # time after an injection that is not fault-free
NAB_FILE = "ec2_request_latency_system_failure.csv"
NAB_KEY = "realKnownCause/" + NAB_FILE
NAB_PROBATION = 0.15
NAB_MULTIPLE = 1.25
NAB_WINDOW_S = 1500.0  # six 5-minute samples


def _time(raw: str) -> float:
    return datetime.strptime(raw[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Fault:
    at: float  # unix seconds
    pod: str
    kind: str


@dataclass(frozen=True)
class Day:
    """One day of Nezha: per-minute rows of every pod, aligned."""

    pods: tuple[str, ...]  # service names (the pod name without its hash)
    minutes: Floats  # unix seconds, one per row
    load: Floats  # (minutes, pods)
    latency_ms: Floats  # NaN where the pod reported nothing
    faults: tuple[Fault, ...]


def _service(pod: str) -> str:
    return pod.split("-")[0]


def load_day(day: str, data_dir: Path = DATA_DIR) -> Day:
    root = data_dir / "nezha_onlineboutique" / "rca_data" / day
    series: dict[str, dict[int, tuple[float, float]]] = {}
    for path in sorted((root / "metric").glob("*_metric.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                minute = round(_time(row["Time"]) / STEP_S)
                p95_ms = float(row["PodServerLatencyP95(s)"]) * 1000.0
                series.setdefault(_service(row["PodName"]), {})[minute] = (float(row["PodWorkload(Ops)"]), p95_ms)
    pods = tuple(sorted(series))
    minutes = sorted(set().union(*(s.keys() for s in series.values())))
    load = np.full((len(minutes), len(pods)), np.nan)
    latency = np.full((len(minutes), len(pods)), np.nan)
    for j, pod in enumerate(pods):
        for i, m in enumerate(minutes):
            if m in series[pod]:
                load[i, j], latency[i, j] = series[pod][m]
    raw = json.loads((root / f"{day}-fault_list.json").read_text())
    faults = sorted(
        (
            Fault(float(f["inject_timestamp"]), _service(f["inject_pod"]), f["inject_type"])
            for v in raw.values()
            for f in v
        ),
        key=lambda f: f.at,
    )
    return Day(pods, np.asarray(minutes, dtype=np.float64) * STEP_S, load, latency, tuple(faults))


def fault_free(day: Day) -> npt.NDArray[np.bool_]:
    """Rows outside every fault's span."""
    free = np.ones(len(day.minutes), dtype=np.bool_)
    for f in day.faults:
        free &= ~((day.minutes >= f.at - STEP_S) & (day.minutes < f.at + FAULT_SPAN_S))
    return free


@dataclass(frozen=True)
class Scale:
    """Per pod: what the threshold stands for, and the load's unit."""

    threshold_ms: Floats
    load_unit: Floats

    def apply(self, day: Day) -> tuple[Floats, Floats]:
        """(load, latency) scaled, with gaps filled by the pod's last value."""
        load = _fill(day.load) / self.load_unit
        latency = _fill(day.latency_ms) * THRESHOLD_MS / self.threshold_ms
        return load, latency


def _fill(values: Floats) -> Floats:
    out = values.copy()
    for j in range(out.shape[1]):
        last = np.nanmedian(out[:, j])
        for i in range(out.shape[0]):
            if math.isnan(out[i, j]):
                out[i, j] = last
            else:
                last = out[i, j]
    return out


def tune_scale(day: Day) -> Scale:
    free = fault_free(day)
    p99 = np.nanpercentile(day.latency_ms[free], 99, axis=0)
    load = np.nanmedian(day.load, axis=0)
    return Scale(threshold_ms=P99_MULTIPLE * p99, load_unit=np.where(load > 0, load, 1.0))


def day_points(day: Day, scale: Scale) -> list[Point]:
    load, latency = scale.apply(day)
    return [
        Point(pod, float(t), float(load[i, j]), float(latency[i, j]), 0.0)
        for j, pod in enumerate(day.pods)
        for i, t in enumerate(day.minutes.tolist())
    ]


def stream(
    router: AceRouter, times: Floats, load: Floats, latency: Floats, error_rate: Floats | None = None
) -> list[Transition]:
    """Feeds the rows in time order; transitions carry unix seconds. Without
    error rates (the recorded series here carry none) they are 0."""
    start = float(times[0])
    zeros = np.zeros(load.shape[1])
    for i, t in enumerate(times.tolist()):
        errors = zeros if error_rate is None else error_rate[i]
        router.tick(Telemetry(t - start, load[i], latency[i], errors, zeros, load[i]))
    assert router.trail is not None
    return [Transition(tr.at_s + start, tr.backend, tr.old, tr.new) for tr in router.trail.transitions]


@dataclass(frozen=True)
class Reaction:
    fault: Fault
    isolated: bool  # the previous fault was at least ISOLATION_S earlier
    # Seconds from injection to the breaker opening, before the next
    # injection; None: no opening.
    ace_s: float | None
    reactive_s: float | None
    ace_already_open: bool
    reactive_already_open: bool


@dataclass(frozen=True)
class NezhaResult:
    reactions: list[Reaction]
    fault_free_hours: float
    pods: int
    false_openings: dict[str, int]  # per breaker
    model_metrics: dict[str, float]


def _openings(transitions: list[Transition]) -> list[Transition]:
    return [tr for tr in transitions if tr.old == "CLOSED" and tr.new == "OPEN"]


def _reaction(transitions: list[Transition], pod: int, at: float, until: float) -> tuple[float | None, bool]:
    state = "CLOSED"
    for tr in transitions:
        if tr.backend == pod and tr.at_s < at:
            state = tr.new
    for tr in _openings(transitions):
        if tr.backend == pod and at <= tr.at_s < until:
            return tr.at_s - at, state != "CLOSED"
    return None, state != "CLOSED"


def nezha(trained: TrainedModel | None = None, data_dir: Path = DATA_DIR) -> tuple[NezhaResult, TrainedModel]:
    tune, report = load_day(TUNE_DAY, data_dir), load_day(REPORT_DAY, data_dir)
    scale = tune_scale(tune)
    if trained is None:
        trained = model.fit(day_points(tune, scale), 300.0, THRESHOLD_MS).trained
    ace_model: LoadedModel = model.load(trained)
    pods = len(report.pods)
    load, latency = scale.apply(report)
    settings = Settings()
    ace = stream(AceRouter("ACE", pods, settings, ace_model), report.minutes, load, latency)
    reactive = stream(AceRouter("reactive", pods, settings, None), report.minutes, load, latency)
    reactions = []
    for i, f in enumerate(report.faults):
        previous = report.faults[i - 1].at if i else -math.inf
        following = report.faults[i + 1].at if i + 1 < len(report.faults) else math.inf
        until = min(following, f.at + FAULT_EFFECT_S)
        pod = report.pods.index(f.pod)
        a, a_open = _reaction(ace, pod, f.at, until)
        r, r_open = _reaction(reactive, pod, f.at, until)
        reactions.append(Reaction(f, f.at - previous >= ISOLATION_S, a, r, a_open, r_open))
    free = fault_free(report)
    free_minutes = report.minutes[free]

    def false_openings(transitions: list[Transition]) -> int:
        bad = 0
        for tr in _openings(transitions):
            i = int(np.searchsorted(report.minutes, tr.at_s))
            if i < len(free) and free[i]:
                bad += 1
        return bad

    return (
        NezhaResult(
            reactions=reactions,
            fault_free_hours=len(free_minutes) * STEP_S / 3600.0,
            pods=pods,
            false_openings={"ACE": false_openings(ace), "reactive latency breaker": false_openings(reactive)},
            model_metrics=trained.metrics.as_map(),
        ),
        trained,
    )


@dataclass(frozen=True)
class NabWindow:
    start: float
    end: float
    ace_first_s: float | None  # first alarm relative to the window's start (negative: before it)
    reactive_first_s: float | None


@dataclass(frozen=True)
class NabResult:
    windows: list[NabWindow]
    outside: dict[str, int]  # alarms outside every window, per breaker
    threshold_raw: float
    days: float


def nab(ace_trained: TrainedModel, data_dir: Path = DATA_DIR) -> NabResult:
    root = data_dir / "nab"
    times, values = [], []
    seen = set()
    with (root / NAB_FILE).open(newline="") as f:
        for row in csv.DictReader(f):
            t = _time(row["timestamp"])
            if t in seen:  # the file repeats some timestamps
                continue
            seen.add(t)
            times.append(t)
            values.append(float(row["value"]))
    order = np.argsort(times)
    t_arr = np.asarray(times)[order]
    v_arr = np.asarray(values)[order]
    probation = v_arr[: int(NAB_PROBATION * len(v_arr))]
    threshold_raw = NAB_MULTIPLE * float(probation.max())
    latency = (v_arr * THRESHOLD_MS / threshold_raw)[:, None]
    load = np.ones_like(latency)
    settings = Settings()
    # A 300 s window would hold 2 samples: enough to be warm (40 s covered),
    # too few for a trend or a spread that means anything.
    limits = WindowLimits(span_s=NAB_WINDOW_S)
    ace = _openings(stream(AceRouter("ACE", 1, settings, model.load(ace_trained), limits), t_arr, load, latency))
    reactive = _openings(stream(AceRouter("reactive", 1, settings, None, limits), t_arr, load, latency))
    raw = json.loads((root / "combined_windows.json").read_text())[NAB_KEY]
    windows = [(_time(a), _time(b)) for a, b in raw]

    def first(opens: list[Transition], start: float, end: float) -> float | None:
        # NAB credits an alarm inside the window; one just before it (within
        # the window's own length) is shown too, as a negative time.
        hits = [tr.at_s - start for tr in opens if start - (end - start) <= tr.at_s <= end]
        return min(hits) if hits else None

    def outside(opens: list[Transition]) -> int:
        return sum(1 for tr in opens if not any(a - (b - a) <= tr.at_s <= b for a, b in windows))

    return NabResult(
        windows=[NabWindow(a, b, first(ace, a, b), first(reactive, a, b)) for a, b in windows],
        outside={"ACE": outside(ace), "reactive latency breaker": outside(reactive)},
        threshold_raw=threshold_raw,
        days=(float(t_arr[-1]) - float(t_arr[0])) / 86400.0,
    )
