import numpy as np

from services.common import synthetic


def test_same_seed_same_history_and_other_seed_differs():
    a, b, c = (
        synthetic.random_history(5, 3, 3600),
        synthetic.random_history(5, 3, 3600),
        synthetic.random_history(6, 3, 3600),
    )
    assert a.points == b.points
    assert a.points != c.points


def test_latency_rises_steeply_near_capacity_and_quality_falls_with_it():
    h = synthetic.random_history(2, 6, 6 * 3600)
    caps = {b.backend_id: b.capacity_rps for b in h.backends}
    rho = np.array([p.load / caps[p.backend_id] for p in h.points])
    latency = np.array([p.latency_ms for p in h.points])
    low, mid = latency[rho < 0.4], latency[(rho > 0.6) & (rho < 0.8)]
    assert np.median(mid) > 1.5 * np.median(low)
    quality = {(q.backend_id, q.observed_at): q.quality for q in h.quality}
    slow = [quality[(p.backend_id, p.observed_at)] for p in h.points if p.latency_ms > 1000]
    fast = [quality[(p.backend_id, p.observed_at)] for p in h.points if p.latency_ms < 200]
    assert slow and np.mean(slow) < np.mean(fast) - 0.3
    assert all(q.reported_at - q.observed_at >= 3600 for q in h.quality)


def test_demo_scenario_spikes_cross_300_ms_only_on_the_spiking_backends():
    h = synthetic.demo_scenario()
    over = {p.backend_id for p in h.points if p.latency_ms >= 300}
    assert over == {"backend-a", "backend-c"}
