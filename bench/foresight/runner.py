"""Running the closed-loop matrix: every traffic source x fault class x seed
is one case; each case runs every router on the same arrivals and faults.
Cases are spread over worker processes; each worker loads the ONNX models
once through the predictor's validation."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.foresight import faults, model, oracles, peers, routers, score, sim, traffic
from services.common import logs
from services.common.config import boolean
from services.predictor.model import LoadedModel
from services.router.policy import Settings
from services.trainer.train import TrainedModel

Floats = npt.NDArray[np.float64]

ACE = "ACE"
REACTIVE = "reactive latency breaker"
# The router without a model, given in-flight counts: what a fleet whose
# proxy sends them records before the trust gate lets a model drive it.
REACTIVE_IN_FLIGHT = "reactive latency breaker, in-flight given"
# ACE when the caller says how many requests it has in flight per backend
# (DecideRequest.in_flight, RouterClient.pick): policy.choose places
# least-loaded, open breakers counting policy.Settings.open_penalty more.
ACE_IN_FLIGHT = "ACE, in-flight given"
# ACE when the caller sends no counts but reports how each request ended
# (ReportOutcomes): the router counts what it placed and no outcome has
# ended (services/router/outstanding.py).
ACE_REPORTED = "ACE, outcomes reported"
ACE_ROWS = (ACE, ACE_IN_FLIGHT, ACE_REPORTED)
# ACE's own table with no model, beside the rows whose placement it shares:
# what the forecast adds. Not routers a fleet runs today, so no target is
# measured against them.
NO_FORECAST = (REACTIVE, REACTIVE_IN_FLIGHT)
ORACLE_SED = oracles.OracleSed.name
CENTRAL_QUEUE = oracles.CentralQueue.name
ORACLES = (ORACLE_SED, CENTRAL_QUEUE)
ROUTERS = (
    "round robin",
    "least outstanding",
    "peak-EWMA P2C",
    "Envoy outlier detection",
    "LiteLLM latency + cooldown",
    peers.C3.name,
    peers.ShortestExpectedDelay.name,
    peers.GrpcWrr.name,
    REACTIVE,
    REACTIVE_IN_FLIGHT,
    ACE,
    ACE_IN_FLIGHT,
    ACE_REPORTED,
    ORACLE_SED,
    CENTRAL_QUEUE,
)


@dataclass(frozen=True)
class Config:
    pool: sim.Pool = field(default_factory=sim.Pool)
    duration_s: float = 2400.0
    score_from_s: float = 300.0  # warm-up: windows fill, ACE leaves cold start
    utilisation: float = 0.55  # mean offered load / the pool's nominal capacity
    horizon_s: float = 300.0
    # The breakers' settings (ACE, nowcast and reactive share them).
    settings: Settings = field(default_factory=Settings)

    @property
    def base_rps(self) -> float:
        return self.utilisation * self.pool.backends * self.pool.capacity_rps


@dataclass(frozen=True)
class Case:
    source: str
    fault: str
    seed: int

    def scenario(self, cfg: Config) -> faults.Scenario:
        return faults.scenario(self.fault, cfg.pool.backends, cfg.duration_s, self.seed)

    def arrivals(self, cfg: Config, scenario: faults.Scenario) -> traffic.Arrivals:
        # Traffic and faults draw from separate streams of the same seed.
        seed = self.seed * 7919 + traffic.SOURCES.index(self.source)
        return traffic.arrivals(self.source, cfg.base_rps, cfg.duration_s, seed, scenario.flash)


@dataclass(frozen=True)
class Timeline:
    """What the ACE plot of a case shows, per telemetry interval."""

    tick_s: Floats
    speed: Floats  # (ticks, backends): capacity as a fraction of nominal
    load: Floats
    latency_ms: Floats
    forecast_ms: Floats
    states: list[list[str]]
    reference_latency_ms: Floats  # round robin on the same case
    target: int | None
    start_s: float | None
    end_s: float | None


@dataclass(frozen=True)
class CaseResult:
    case: Case
    users: dict[str, score.Users]
    breakers: dict[str, score.Breakers]
    timeline: Timeline | None
    wall_s: float


@dataclass(frozen=True)
class Models:
    # Plain Decide's model, and the model of the row given in-flight counts
    # (the same one when both learn the same history).
    ace: LoadedModel
    ace_in_flight: LoadedModel


@dataclass(frozen=True)
class Trained:
    """The two ACE rows' models as trained, to load in each worker."""

    ace: TrainedModel
    ace_in_flight: TrainedModel


def make_router(name: str, cfg: Config, seed: int, models: Models | None) -> sim.Router:
    n = cfg.pool.backends
    simple: dict[str, Callable[[int, int], sim.Router]] = {
        "round robin": routers.RoundRobin,
        "least outstanding": routers.LeastOutstanding,
        "peak-EWMA P2C": routers.PeakEwma,
        "Envoy outlier detection": routers.EnvoyOutlier,
        "LiteLLM latency + cooldown": routers.LiteLLMLatency,
        peers.C3.name: peers.C3,
        peers.GrpcWrr.name: peers.GrpcWrr,
    }
    if name in simple:
        return simple[name](n, seed)
    pool = cfg.pool
    if name == peers.ShortestExpectedDelay.name:
        return peers.ShortestExpectedDelay(n, seed, mean_service_ms=pool.mean_service_ms, slots=pool.slots)
    if name == ORACLE_SED:
        return oracles.OracleSed(n, seed, pool.mean_service_ms)
    if name == CENTRAL_QUEUE:
        return oracles.CentralQueue(n, seed, pool.mean_service_ms)
    base, settings = variant(name, cfg.settings)
    if base == REACTIVE:
        return routers.AceRouter(name, n, settings, None)
    if base == REACTIVE_IN_FLIGHT:
        return routers.AceRouter(name, n, settings, None, load_aware=True)
    if models is None:
        raise ValueError(f"{name} needs the trained model")
    if base == ACE:
        return routers.AceRouter(name, n, settings, models.ace)
    if base == ACE_IN_FLIGHT:
        return routers.AceRouter(name, n, settings, models.ace_in_flight, load_aware=True)
    if base == ACE_REPORTED:
        return routers.AceRouter(name, n, settings, models.ace_in_flight, reports=True)
    raise ValueError(f"unknown router {name!r}")


def variant(name: str, settings: Settings) -> tuple[str, Settings]:
    """An ACE row with some settings changed, for ablations and tuning on
    the settings seeds: "ACE, in-flight given [error_penalty=0,
    open_penalty=4]" is that row with those two policy.Settings fields."""
    if not name.endswith("]") or " [" not in name:
        return name, settings
    base, _, spec = name[:-1].partition(" [")
    changes: dict[str, Any] = {}
    for pair in spec.split(","):
        key, _, value = pair.strip().partition("=")
        if key not in Settings.__dataclass_fields__:
            raise ValueError(f"{name}: Settings has no field {key!r}")
        kind = type(getattr(settings, key))
        changes[key] = boolean(value) if kind is bool else kind(value)
    return base, dataclasses.replace(settings, **changes)


def run_case(
    case: Case, cfg: Config, names: Sequence[str], models: Models | None, keep_timeline: bool, timeline_of: str = ACE
) -> CaseResult:
    started = time.perf_counter()
    scenario = case.scenario(cfg)
    arrivals = case.arrivals(cfg, scenario)
    reference = sim.run(routers.RoundRobin(cfg.pool.backends, case.seed), arrivals, scenario, cfg.pool)
    users: dict[str, score.Users] = {}
    breakers: dict[str, score.Breakers] = {}
    timeline = None
    for name in names:
        router = make_router(name, cfg, case.seed, models)
        result = reference if name == "round robin" else sim.run(router, arrivals, scenario, cfg.pool)
        users[name] = score.users(result, cfg.pool, cfg.score_from_s)
        trail = getattr(router, "trail", None)
        if trail is not None:
            breakers[name] = score.breakers(trail, result, reference, cfg.pool, cfg.horizon_s, cfg.score_from_s)
        if name == timeline_of and keep_timeline and trail is not None:
            seconds = np.minimum(result.tick_s.astype(np.intp), scenario.speed.shape[1] - 1)
            timeline = Timeline(
                tick_s=result.tick_s,
                speed=scenario.speed[:, seconds].T.copy(),
                load=result.load,
                latency_ms=result.latency_tel_ms,
                forecast_ms=np.asarray(trail.risk_ms),
                states=trail.states,
                reference_latency_ms=reference.latency_tel_ms,
                target=scenario.target,
                start_s=scenario.start_s,
                end_s=scenario.end_s,
            )
    return CaseResult(case, users, breakers, timeline, time.perf_counter() - started)


# --- worker processes ---

_worker_models: Models | None = None


def _init_worker(trained: Trained | None) -> None:
    global _worker_models
    # A spawned worker starts with structlog's defaults: the router's table
    # would log every breaker transition.
    logs.configure("foresight", "console", "warning")
    if trained is not None:
        plain = model.load(trained.ace)
        in_flight = plain if trained.ace_in_flight is trained.ace else model.load(trained.ace_in_flight)
        _worker_models = Models(ace=plain, ace_in_flight=in_flight)


def _run_job(job: tuple[Case, Config, tuple[str, ...], bool]) -> CaseResult:
    case, cfg, names, keep = job
    return run_case(case, cfg, names, _worker_models, keep)


def run_all(
    cases: Sequence[Case],
    cfg: Config,
    names: Sequence[str],
    trained: Trained | None,
    workers: int,
    keep_timeline: Callable[[Case], bool],
    progress: Callable[[int, int, CaseResult], None],
) -> Iterator[CaseResult]:
    jobs = [(case, cfg, tuple(names), keep_timeline(case)) for case in cases]
    if workers <= 1:
        _init_worker(trained)
        for i, job in enumerate(jobs):
            result = _run_job(job)
            progress(i + 1, len(jobs), result)
            yield result
        return
    # spawn, not fork: onnxruntime's thread pools do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(trained,)) as pool:
        for i, result in enumerate(pool.imap_unordered(_run_job, jobs)):
            progress(i + 1, len(jobs), result)
            yield result


# What each ACE row's model learns from, by --history. A fleet's history
# is recorded under whatever its proxies do: for plain Decide, ACE's own
# weighted rotation with reactive breakers (what the router does before the
# trust gate lets a model drive it); least outstanding for a proxy that
# counts its requests. So by default ("own") each row learns the history of
# its own placement. On the settings seeds, plain Decide's model learning the
# reactive history instead of round robin's kept 3.21% over the SLO and took
# its breakers from 22.3 to 10.6 state changes per backend-hour (quiet class:
# 9.0 to 0.1), precision 0.19 to 0.41. A model that had
# only seen round robin read the load swings of least-loaded placement (a
# fast backend briefly taking 1.4x its share) as a flash crowd: it forecast
# 800 ms in the quiet class and kept the in-flight row's breakers open or
# half-open in every interval. "round robin" is that old way, and "both"
# one model for both rows that learns both histories.
HISTORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "own": ((REACTIVE,), (REACTIVE_IN_FLIGHT,)),
    "least outstanding": ((REACTIVE,), ("least outstanding",)),
    "round robin": (("round robin",), ("round robin",)),
    "both": (("round robin", "least outstanding"), ("round robin", "least outstanding")),
}


def _history(job: tuple[Case, Config, str]) -> sim.Run:
    case, cfg, placement = job
    scenario = case.scenario(cfg)
    router = make_router(placement, cfg, case.seed, None)
    return sim.run(router, case.arrivals(cfg, scenario), scenario, cfg.pool)


def histories(
    cases: Sequence[Case], cfg: Config, placements: Sequence[str], workers: int = 1
) -> dict[str, list[sim.Run]]:
    """Telemetry of the cases under each placement, in the cases' order, to
    train on: what a fleet records before ACE steers it."""
    jobs = [(case, cfg, placement) for placement in placements for case in cases]
    if workers <= 1:
        runs = [_history(job) for job in jobs]
    else:
        # Plain Decide's history runs the router's table (reactive): quiet it.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(None,)) as pool:
            runs = pool.map(_history, jobs)
    n = len(cases)
    return {placement: runs[i * n : (i + 1) * n] for i, placement in enumerate(placements)}
