"""The published peers' rules, fed hand-made completions and load reports,
and each of them closing the loop in the simulation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.foresight import faults, peers, sim, traffic
from bench.foresight.sim import Telemetry

N = 4


def complete(router, backend, latency_ms, service_ms, queue=0, failed=False, times=1):
    """Completions of requests the router had sent to `backend`."""
    for _ in range(times):
        router.outstanding[backend] += 1
        router.done(backend, 0.0, latency_ms, failed, service_ms, queue)


def picks(router, count, t=0.0):
    return Counter(router.pick(t) for _ in range(count))


# C3


def test_c3_ranks_unmeasured_backends_first_at_random():
    router = peers.C3(N, seed=1)
    complete(router, 0, 10.0, 10.0)
    # However loaded, a backend that has not answered yet outranks one that
    # has: no pick goes to backend 0 while the others are unmeasured.
    assert set(picks(router, 60)) == {1, 2, 3}


def test_c3_prefers_the_shorter_reported_service_time_at_equal_load():
    router = peers.C3(N, seed=1)
    for b in range(N):
        complete(router, b, 100.0, 80.0)
    # Same response times seen; backend 2 reports serving faster.
    complete(router, 2, 100.0, 20.0, times=10)
    router.outstanding = [1, 1, 1, 1]
    assert router.pick(0.0) == 2


def test_c3_penalises_a_long_reported_queue_cubically():
    router = peers.C3(N, seed=1)
    for b in range(N):
        complete(router, b, 500.0, 200.0)
    # Backend 0 serves in 40 ms but reports 4 waiting: q_hat = 5, 5^3 x 40 ms.
    complete(router, 0, 60.0, 40.0, queue=4, times=30)
    # Backend 1 serves in 60 ms with nobody waiting: q_hat = 1.
    complete(router, 1, 60.0, 60.0, queue=0, times=30)
    # R - S + q_hat^3 x S: the cube, not the square or q_hat itself.
    assert router.scores()[0] == pytest.approx(60.0 - 40.0 + 5**3 * 40.0, rel=1e-3)
    assert router.scores()[1] == pytest.approx(60.0, rel=1e-3)
    assert router.pick(0.0) == 1


def test_c3_counts_its_own_outstanding_requests_in_the_queue():
    router = peers.C3(N, seed=1)
    for b in range(N):
        complete(router, b, 60.0, 60.0)
    chosen = [router.pick(0.0) for _ in range(8)]
    # Equal backends: outstanding requests alone spread the picks.
    assert Counter(chosen) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_c3_a_fast_failure_does_not_make_a_backend_look_fast():
    router = peers.C3(N, seed=1)
    complete(router, 0, 100.0, 100.0)
    complete(router, 0, 1.0, 0.0, failed=True, times=20)
    assert router.service_ms[0] == 100.0
    # The response time the client saw still moves.
    assert router.response_ms[0] < 2.0
    # A served request that failed still reports its service time.
    complete(router, 0, 5_000.0, 300.0, failed=True)
    assert router.service_ms[0] == pytest.approx(100.0 + 0.3 * 200.0)


def test_c3_ewma_weighs_a_new_sample_by_elasticsearchs_alpha():
    router = peers.C3(N, seed=1)
    complete(router, 3, 100.0, 50.0, queue=2)
    complete(router, 3, 200.0, 150.0, queue=0)
    assert router.response_ms[3] == pytest.approx(0.7 * 100.0 + 0.3 * 200.0)
    assert router.service_ms[3] == pytest.approx(0.7 * 50.0 + 0.3 * 150.0)
    assert router.queue[3] == pytest.approx(0.7 * 2.0)


# SED


def test_sed_sends_to_the_faster_backend_at_equal_counts():
    router = peers.ShortestExpectedDelay(N, seed=1)
    complete(router, 1, 30.0, 30.0, times=40)
    assert router.service_ms[1] == pytest.approx(30.0, rel=1e-3)
    assert router.pick(0.0) == 1


def test_sed_sends_to_a_slower_backend_when_the_fast_one_has_a_queue():
    router = peers.ShortestExpectedDelay(N, seed=1)
    complete(router, 1, 30.0, 30.0, times=40)
    # Backend 1 has 2 slots busy and 3 waiting: (4 / 2 + 1) x 30 ms = 90 ms
    # against 60 ms on an idle backend of the pool's mean speed.
    router.outstanding = [0, 5, 0, 0]
    assert router.costs()[1] == pytest.approx(90.0, rel=1e-3)
    assert router.pick(0.0) != 1
    # Within its slots it is still the cheapest.
    router.outstanding = [1, 1, 1, 1]
    assert router.pick(0.0) == 1


def test_sed_ignores_failed_answers_and_starts_from_the_prior():
    router = peers.ShortestExpectedDelay(N, seed=1, mean_service_ms=50.0)
    assert router.service_ms == [50.0] * N
    complete(router, 0, 5_000.0, 4_000.0, failed=True)
    complete(router, 0, 1.0, 0.0, failed=True)
    assert router.service_ms[0] == 50.0
    complete(router, 0, 100.0, 100.0)
    assert router.service_ms[0] == pytest.approx(50.0 + 0.2 * 50.0)


def test_sed_breaks_ties_at_random():
    router = peers.ShortestExpectedDelay(N, seed=1)
    chosen: Counter[int] = Counter()
    for _ in range(400):
        b = router.pick(0.0)
        router.outstanding[b] -= 1
        chosen[b] += 1
    assert set(chosen) == set(range(N))
    assert min(chosen.values()) > 60


# gRPC weighted round robin


def report(at_s, qps, util, error_rate=None):
    qps, util = np.asarray(qps, dtype=float), np.asarray(util, dtype=float)
    err = np.zeros(N) if error_rate is None else np.asarray(error_rate, dtype=float)
    zeros = np.zeros(N)
    return Telemetry(at_s, qps, zeros + 50.0, err, util, qps)


TWO_TO_ONE = ([10.0] * N, [0.25, 0.5, 0.5, 0.5])  # weights 40, 20, 20, 20


def is_round_robin(router, count=40):
    seq = [router.pick(0.0) for _ in range(count)]
    return all(sorted(seq[i : i + N]) == list(range(N)) for i in range(0, count, N))


def test_wrr_is_round_robin_during_the_blackout():
    router = peers.GrpcWrr(N, seed=2)
    assert is_round_robin(router)
    router.tick(report(10.0, *TWO_TO_ONE))
    # Reporting since 10 s, not yet for 10 s.
    assert is_round_robin(router)


def test_wrr_splits_picks_in_proportion_to_weights_after_the_blackout():
    router = peers.GrpcWrr(N, seed=2)
    router.tick(report(10.0, *TWO_TO_ONE))
    router.tick(report(20.0, *TWO_TO_ONE))
    counts = picks(router, 5_000)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.02)
    assert counts[2] == pytest.approx(counts[1], rel=0.02)
    assert counts[3] == pytest.approx(counts[1], rel=0.02)


def test_wrr_errors_lower_a_weight():
    router = peers.GrpcWrr(N, seed=2)
    qps, util, err = [10.0] * N, [0.5] * N, [0.5, 0.0, 0.0, 0.0]
    router.tick(report(10.0, qps, util, err))
    router.tick(report(20.0, qps, util, err))
    # 10 / (0.5 + 0.5 x 1.0) = 10 against 10 / 0.5 = 20.
    assert router.weight == pytest.approx([10.0, 20.0, 20.0, 20.0])
    counts = picks(router, 4_000)
    assert counts[1] / counts[0] == pytest.approx(2.0, rel=0.02)


def test_wrr_keeps_a_weight_through_empty_reports_until_it_expires():
    router = peers.GrpcWrr(N, seed=2)
    router.tick(report(10.0, *TWO_TO_ONE))
    router.tick(report(20.0, *TWO_TO_ONE))
    # Backend 0 stops answering; the others go on reporting weight 20.
    qps = [0.0, 10.0, 10.0, 10.0]
    for at in range(30, 200, 10):
        router.tick(report(float(at), qps, TWO_TO_ONE[1]))
    # 190 s: backend 0's last report is 170 s old, its weight still stands.
    counts = picks(router, 5_000)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.02)
    # 200 s: 180 s old, expired: it gets the mean of the usable weights.
    router.tick(report(200.0, qps, TWO_TO_ONE[1]))
    counts = picks(router, 5_000)
    assert counts[0] / counts[1] == pytest.approx(1.0, rel=0.02)
    # Reporting again, it sits out a new blackout before its weight counts.
    router.tick(report(210.0, *TWO_TO_ONE))
    counts = picks(router, 5_000)
    assert counts[0] / counts[1] == pytest.approx(1.0, rel=0.02)
    router.tick(report(220.0, *TWO_TO_ONE))
    counts = picks(router, 5_000)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.02)


def test_wrr_falls_back_to_round_robin_with_fewer_than_two_weights():
    router = peers.GrpcWrr(N, seed=2)
    qps = [10.0, 0.0, 0.0, 0.0]
    router.tick(report(10.0, qps, [0.25, 0.0, 0.0, 0.0]))
    router.tick(report(20.0, qps, [0.25, 0.0, 0.0, 0.0]))
    assert router.usable_weight(0, 20.0) == pytest.approx(40.0)
    assert is_round_robin(router)


# Closing the loop


@pytest.mark.parametrize("cls", [peers.C3, peers.ShortestExpectedDelay, peers.GrpcWrr])
def test_each_peer_places_every_request_and_spares_the_slow_backend(cls):
    pool = sim.Pool()
    scenario = faults.scenario("heterogeneous", N, 600.0, seed=4)
    arr = traffic.synthetic_arrivals(0.55 * N * pool.capacity_rps, 600.0, 3, None)
    run = sim.run(cls(N, 4), arr, scenario, pool)
    counts = np.bincount(run.backend, minlength=N)
    assert run.offered == len(arr.times)
    assert counts.sum() == len(arr.times)
    assert scenario.target is not None
    assert counts[scenario.target] < counts.mean()
