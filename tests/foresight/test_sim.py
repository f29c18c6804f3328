"""The simulator's physics: latency comes from the queue, a drained backend
recovers, and every request is accounted for."""

from __future__ import annotations

import numpy as np
import pytest

from bench.foresight import faults, routers, score, sim, traffic
from bench.foresight.sim import Pool, Telemetry

POOL = Pool()
DURATION = 900.0


class Fixed:
    """Sends every request to backend `first` until `switch_s`, then to `then`;
    counts what the simulation tells it."""

    name = "fixed"
    wants_done = True

    def __init__(self, first: int, then: int, switch_s: float) -> None:
        self.first, self.then, self.switch_s = first, then, switch_s
        self.done_calls = 0
        self.ticks: list[Telemetry] = []

    def pick(self, t: float) -> int:
        return self.first if t < self.switch_s else self.then

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.done_calls += 1

    def tick(self, telemetry: Telemetry) -> None:
        self.ticks.append(telemetry)


def quiet() -> faults.Scenario:
    return faults.scenario("quiet", POOL.backends, DURATION, seed=1)


def arrivals(utilisation: float, seed: int = 3) -> traffic.Arrivals:
    rate = utilisation * POOL.backends * POOL.capacity_rps
    return traffic.synthetic_arrivals(rate, DURATION, seed, None)


def test_latency_rises_slowly_then_steeply_with_utilisation():
    means = [
        float(sim.run(routers.RoundRobin(POOL.backends, 0), arrivals(u), quiet(), POOL).latency_ms.mean())
        for u in (0.3, 0.6, 0.9)
    ]
    assert means[0] < means[1] < means[2]
    # Steeper near capacity: the second step costs more than the first.
    assert means[2] - means[1] > 2 * (means[1] - means[0])


def test_a_drained_backend_recovers():
    # Backend 0 alone takes the whole pool's load (over its capacity) for five
    # minutes, then nothing.
    router = Fixed(first=0, then=1, switch_s=300.0)
    run = sim.run(router, arrivals(0.3), quiet(), POOL)
    latency = run.latency_tel_ms[:, 0]
    during = latency[run.tick_s <= 300.0]
    after = latency[run.tick_s >= 400.0]
    assert during.max() >= POOL.timeout_ms * 0.9
    # Drained, its probe latency falls back to one service time.
    np.testing.assert_allclose(after, POOL.mean_service_ms, rtol=0.01)
    assert (run.load[run.tick_s >= 310.0, 0] == 0).all()


def test_requests_are_conserved():
    router = Fixed(first=0, then=1, switch_s=300.0)
    arr = arrivals(0.3)
    run = sim.run(router, arr, quiet(), POOL)
    served = int((~run.failed).sum())
    failed = int(run.failed.sum())
    assert run.offered == len(arr) == served + failed
    assert failed > 0 and served > 0
    # Every request is routed once: the telemetry's load adds up to them all.
    assert round(float(run.load.sum()) * POOL.interval_s) == run.offered
    # Every completion reaches the router, except those after the last interval.
    finish = run.arrival_s + run.latency_ms / 1000.0
    assert router.done_calls == int((finish <= run.tick_s[-1]).sum())


def test_a_backend_that_answers_nothing_times_out():
    scenario = faults.scenario("backend_failure", POOL.backends, DURATION, seed=2)
    assert scenario.target is not None and scenario.start_s is not None and scenario.end_s is not None
    run = sim.run(routers.RoundRobin(POOL.backends, 0), arrivals(0.5), scenario, POOL)
    # Speed is set per whole second: the failure holds from the first whole
    # second after its start.
    down = (run.arrival_s >= np.ceil(scenario.start_s)) & (run.arrival_s < scenario.end_s - 1)
    sent = (run.backend == scenario.target) & down
    assert sent.sum() > 100
    assert run.failed[sent].all()
    assert (run.latency_ms[sent] == POOL.timeout_ms).all()


def test_runs_are_seeded():
    a = sim.run(routers.LeastOutstanding(POOL.backends, 5), arrivals(0.6, seed=9), quiet(), POOL)
    b = sim.run(routers.LeastOutstanding(POOL.backends, 5), arrivals(0.6, seed=9), quiet(), POOL)
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)
    np.testing.assert_array_equal(a.backend, b.backend)


@pytest.mark.parametrize("fault", faults.FAULTS)
def test_every_fault_class_builds(fault):
    scenario = faults.scenario(fault, POOL.backends, DURATION, seed=4)
    assert scenario.speed.shape == (POOL.backends, int(DURATION) + 1)
    assert (scenario.speed >= 0).all()
    if fault in ("quiet", "flash_crowd", "capacity_cliff", "capacity_cliff_precursor", "fail_fast"):
        # Their harm is not a speed set in advance.
        assert (scenario.speed == 1).all()
    else:
        assert (scenario.speed < 1).any()
    if fault.startswith("capacity_cliff"):
        assert scenario.cliff is not None and scenario.cliff.backend == scenario.target
    if fault in ("leak_then_crash", "fail_fast"):
        (outage,) = scenario.outages
        assert outage.backend == scenario.target and outage.kills == (fault == "leak_then_crash")


class Counting(Fixed):
    """Round robin that keeps what each completion reported."""

    def __init__(self) -> None:
        super().__init__(0, 0, 0.0)
        self.turn = 0
        self.reports: list[tuple[int, float, bool, float, int]] = []

    def pick(self, t: float) -> int:
        self.turn += 1
        return self.turn % POOL.backends

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.reports.append((backend, t, failed, service_ms, queue))


def test_a_crash_loses_what_the_backend_held_and_it_restarts_empty():
    scenario = faults.scenario("leak_then_crash", POOL.backends, 2400.0, seed=5)
    (crash,) = scenario.outages
    rate = 0.55 * POOL.backends * POOL.capacity_rps
    arr = traffic.synthetic_arrivals(rate, 2400.0, 3, None)
    run = sim.run(routers.RoundRobin(POOL.backends, 0), arr, scenario, POOL)
    assert run.lost is not None
    lost = run.lost
    # Only requests on the crashed backend, sent before the crash and not
    # answered by then, are lost; each fails at the crash itself.
    assert lost.sum() >= 1
    assert (run.backend[lost] == crash.backend).all()
    assert (run.arrival_s[lost] < crash.start_s).all()
    np.testing.assert_allclose(run.arrival_s[lost] + run.latency_ms[lost] / 1000.0, crash.start_s, atol=1e-6)
    assert run.failed[lost].all()
    # While it is down, it refuses at once.
    down = (run.backend == crash.backend) & (run.arrival_s >= crash.start_s) & (run.arrival_s < crash.end_s)
    assert down.sum() > 50 and run.failed[down].all()
    assert (run.latency_ms[down] == sim.FAIL_FAST_MS).all()
    # Back up, it starts empty: the first request after the restart waits for nothing.
    after = np.flatnonzero((run.backend == crash.backend) & (run.arrival_s >= crash.end_s))
    assert not run.failed[after[0]] and run.latency_ms[after[0]] < 4 * POOL.mean_service_ms * 1.7
    # The leak shows in errors before the crash: answered after service, not fast.
    leaking = (
        (run.backend == crash.backend) & (run.arrival_s > crash.start_s - 120) & (run.arrival_s < crash.start_s - 5)
    )
    errors = leaking & run.failed
    assert errors.sum() > 0 and (run.latency_ms[errors] > sim.FAIL_FAST_MS).all()


def test_completions_report_service_time_and_queue():
    scenario = faults.scenario("fail_fast", POOL.backends, DURATION, seed=6)
    (outage,) = scenario.outages
    router = Counting()
    sim.run(router, arrivals(0.8), scenario, POOL)
    refused = [r for r in router.reports if r[0] == outage.backend and outage.start_s + 1 < r[1] < outage.end_s]
    assert refused and all(failed and service == 0.0 for _, _, failed, service, _ in refused)
    served = [r for r in router.reports if not r[2]]
    assert all(service > 0 for _, _, _, service, _ in served)
    # At 80% load some answers leave others waiting behind them.
    assert max(q for *_, q in served) >= 1


def test_a_capacity_cliff_follows_the_load_the_backend_carries():
    scenario = faults.scenario("capacity_cliff", POOL.backends, 2400.0, seed=7)
    assert scenario.cliff is not None and scenario.start_s is not None
    target, start = scenario.cliff.backend, scenario.start_s
    rate = 0.55 * POOL.backends * POOL.capacity_rps
    arr = traffic.synthetic_arrivals(rate, 2400.0, 3, None)

    def target_latency(router: sim.Router) -> float:
        run = sim.run(router, arr, scenario, POOL)
        during = (run.backend == target) & (run.arrival_s > start)
        return float(np.percentile(run.latency_ms[during], 99))

    # Its share of the load fills the resource and it tips; a third less
    # load on it, and it never does.
    even = target_latency(routers.RoundRobin(POOL.backends, 0))
    light = target_latency(Lighter(target))
    assert even > 3 * light


class Lighter(Fixed):
    """Round robin that skips `target` every third time its turn comes."""

    def __init__(self, target: int) -> None:
        super().__init__(0, 0, 0.0)
        self.target = target
        self.turn = 0
        self.skips = 0

    def pick(self, t: float) -> int:
        self.turn += 1
        b = self.turn % POOL.backends
        if b == self.target:
            self.skips += 1
            if self.skips % 3 == 0:
                return (b + 1) % POOL.backends
        return b


def test_episodes_merge_breaches_less_than_a_minute_apart():
    ticks = np.arange(10.0, 210.0, 10.0)
    breach = np.zeros(len(ticks), dtype=np.bool_)
    breach[[2, 3, 8, 17]] = True  # 30-40 s, 90 s (50 s later: same episode), 180 s
    assert score.episodes(breach, ticks) == [(30.0, 90.0), (180.0, 180.0)]


def test_openings_are_scored_against_the_counterfactual():
    pool = Pool(backends=1)
    ticks = np.arange(10.0, 1210.0, 10.0)

    def run_with(latency: np.ndarray) -> sim.Run:
        n = len(ticks)
        return sim.Run(
            latency_ms=np.zeros(0, dtype=np.float32),
            backend=np.zeros(0, dtype=np.int8),
            failed=np.zeros(0, dtype=np.bool_),
            arrival_s=np.zeros(0),
            tick_s=ticks,
            load=np.zeros((n, 1)),
            latency_tel_ms=latency.reshape(n, 1),
            error_rate=np.zeros((n, 1)),
        )

    calm = np.full(len(ticks), 100.0)
    reference = calm.copy()
    reference[(ticks >= 600) & (ticks < 700)] = 1000.0  # breaches from 600 s without steering
    trail = routers.Trail(
        transitions=[
            routers.Transition(480.0, 0, "CLOSED", "OPEN"),  # 120 s ahead of the breach
            routers.Transition(800.0, 0, "OPEN", "HALF_OPEN"),
            routers.Transition(900.0, 0, "HALF_OPEN", "CLOSED"),
            routers.Transition(1000.0, 0, "CLOSED", "OPEN"),  # nothing follows: a false drain
        ]
    )
    got = score.breakers(trail, run_with(calm), run_with(reference), pool, horizon_s=300.0, score_from_s=300.0)
    assert (got.openings, got.right_openings, got.false_drains) == (2, 1, 1)
    assert (got.episodes, got.foreseen, got.leads_s) == (1, 1, [120.0])
    assert got.transitions == 4
