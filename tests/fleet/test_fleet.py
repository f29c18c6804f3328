"""The fleet evaluation's columns on histories built by hand, through the
router's real breakers, and the generator's promises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.fleet import __main__ as bench_main
from bench.fleet import anatomy, evaluate, generator, probability, relative, score
from bench.foresight import model, realtel
from bench.foresight.routers import Transition
from services.router.policy import Settings

T0 = 1_800_000_000.0
TIMES = T0 + np.arange(600, dtype=np.float64) * 10.0  # 100 minutes, a point every 10 s


def flat(backends: int, ms: float = 100.0) -> np.ndarray:
    return np.full((len(TIMES), backends), ms)


def at(offset_s: float) -> int:
    return int(offset_s // 10)


def columns(transitions, latency, events):
    return score.score(transitions, TIMES, latency, events, threshold_ms=300.0, horizon_s=300.0, interval_s=10.0)


def test_columns_of_a_hand_made_history():
    latency = flat(2)
    latency[at(1000) : at(1100) + 1, 0] = 400.0  # episode 1: 1000-1100 s
    latency[at(3000), 0] = 400.0  # episode 2: one point, never caught
    events = (((T0 + 900, T0 + 1200), (T0 + 2950, T0 + 3050)), ())
    transitions = [
        Transition(T0 + 800, 0, "CLOSED", "OPEN"),  # 200 s ahead of episode 1: right
        Transition(T0 + 1200, 0, "OPEN", "HALF_OPEN"),
        Transition(T0 + 1300, 0, "HALF_OPEN", "CLOSED"),
        Transition(T0 + 5000, 1, "CLOSED", "OPEN"),  # nothing follows: wrong, and fault-free
    ]
    c = columns(transitions, latency, events)
    assert (c.episodes, c.caught, c.leads_s) == (2, 1, [200.0])
    assert (c.openings, c.right_openings, c.free_openings) == (2, 1, 1)
    # Backend 0 is busy over [600, 1800] s and [2650, 3650] s once widened
    # (300 s before, 600 s after): 121 + 101 of its 600 points.
    assert c.free_backend_hours == pytest.approx((600 - 222 + 600) * 10 / 3600)
    # Open or half-open at 800-1290 s on backend 0 and 5000-5990 s on backend 1.
    assert (c.not_closed_points, c.points) == (50 + 100, 1200)
    assert (c.recall, c.precision, c.median_lead_s) == (0.5, 0.5, 200.0)


def test_a_breaker_open_from_long_before_catches_with_one_horizon_of_lead():
    latency = flat(1)
    latency[at(2000) : at(2100), 0] = 400.0
    c = columns([Transition(T0 + 100, 0, "CLOSED", "OPEN")], latency, ((),))
    assert (c.caught, c.leads_s, c.right_openings) == (1, [300.0], 0)
    assert c.not_closed_points == 600 - at(100)


def test_an_opening_after_the_breach_ended_catches_nothing():
    latency = flat(1)
    latency[at(2000) : at(2100) + 1, 0] = 400.0
    c = columns([Transition(T0 + 2110, 0, "CLOSED", "OPEN")], latency, ((),))
    assert (c.episodes, c.caught, c.openings, c.right_openings) == (1, 0, 1, 0)
    assert math.isnan(c.median_lead_s)


def test_the_reactive_breaker_end_to_end_on_a_step():
    # The router's own breaker opens once observed latency has stayed over
    # the threshold for open_after_s (10 s): at the second point over it.
    latency = flat(2)
    latency[at(2000) : at(2600), 1] = 500.0
    load = np.ones_like(latency)
    source = evaluate.Source(
        "step", 10.0, TIMES, load, latency, np.zeros_like(latency), ((), ((T0 + 2000, T0 + 2600),))
    )
    c = evaluate.run(evaluate.reactive(), source)
    assert (c.episodes, c.caught, c.leads_s) == (1, 1, [-10.0])
    assert (c.openings, c.right_openings, c.free_openings) == (1, 1, 0)
    assert c.not_closed_points > 0


def test_the_generator_is_seeded_and_every_interval_sees_the_same_fleet():
    a = generator.generate(7, backends=3, duration_s=3600.0, interval_s=10.0)
    b = generator.generate(7, backends=3, duration_s=3600.0, interval_s=10.0)
    c = generator.generate(8, backends=3, duration_s=3600.0, interval_s=10.0)
    minute = generator.generate(7, backends=3, duration_s=3600.0, interval_s=60.0)
    assert np.array_equal(a.latency_ms, b.latency_ms) and np.array_equal(a.load, b.load)
    assert not np.array_equal(a.latency_ms, c.latency_ms)
    assert (a.replicas, a.events) == (minute.replicas, minute.events)
    assert a.latency_ms.shape == (360, 3) and minute.latency_ms.shape == (60, 3)
    with pytest.raises(ValueError, match="multiple of 5"):
        generator.generate(7, interval_s=12.0)


def test_the_generated_fleet_breaches_only_in_its_events():
    f = generator.generate(1, backends=8, duration_s=6 * 3600.0, interval_s=10.0)
    source = evaluate.from_fleet(f, "fleet")
    found = score.breach_episodes(source.latency_ms, source.times, 300.0, 10.0)
    assert sum(map(len, found)) > 10
    for b, own in enumerate(found):
        spans = [(f.start + ev.start_s, f.start + ev.end_s) for ev in f.events if ev.backend == b]
        for start, _ in own:
            assert any(s <= start <= e + score.SETTLE_S for s, e in spans)


@pytest.mark.slow
def test_the_bench_writes_its_report(tmp_path):
    assert bench_main.main(["--out", str(tmp_path), "--hours", "0.5", "--seeds", "1", "--no-real"]) == 0
    text = (tmp_path / "fleet.md").read_text()
    assert text.count("| reactive breaker on observed latency |") == 4


def test_relative_units_divide_by_the_backends_own_running_median():
    latency = flat(2, 50.0)
    latency[:, 1] = 200.0
    latency[at(3000), 0] = 100.0  # twice its usual: one point does not move the median
    load = np.full_like(latency, 4.0)
    source = evaluate.Source("rel", 10.0, TIMES, load, latency, np.zeros_like(latency), ((), ()))
    out = relative.relative(source)
    assert out.latency_ms[at(3000), 0] == pytest.approx(2 * relative.REF_MS)
    assert out.latency_ms[at(2990), 0] == out.latency_ms[at(5000), 1] == pytest.approx(relative.REF_MS)
    assert np.allclose(out.load, relative.REF_LOAD)


@pytest.fixture(scope="module")
def makeup():
    return model.load(evaluate.makeup_model())


@pytest.mark.slow
@pytest.mark.parametrize(("interval_s", "jitter"), [(10.0, False), (60.0, False), (30.0, False), (15.0, True)])
def test_on_a_new_fleet_the_gated_model_opens_rarely_and_catches_what_the_reactive_breaker_does(
    makeup, interval_s, jitter
):
    # Issue 14's first target, on fleets of another kind than the model
    # learnt (seeds the bench does not report), at the two intervals the
    # bench reports, at one it does not, and with scrape times that wander.
    # Ungated, the same model opened 1.27 times per fault-free backend-hour
    # at 10 s (reports/fleet.md).
    fleets = [
        evaluate.from_fleet(generator.generate(seed, duration_s=4 * 3600.0, interval_s=interval_s), f"f{seed}")
        for seed in (7, 8)
    ]
    if jitter:
        fleets = [bench_main.jittered(f, seed) for f, seed in zip(fleets, (7, 8), strict=True)]
        assert not np.allclose(np.diff(fleets[0].times), interval_s), "the scrape times wander"
    gated, reactive = score.Columns(), score.Columns()
    for source in fleets:
        gated.add(evaluate.run(evaluate.gated("gated", makeup), source))
        reactive.add(evaluate.run(evaluate.reactive(), source))
    assert reactive.episodes > 5, "the fleets breach"
    assert gated.free_per_backend_hour <= 1.0
    assert gated.caught >= reactive.caught


def test_a_proven_model_that_forecasts_calm_still_catches_what_the_reactive_breaker_does():
    # A proven model that has only ever seen calm days: every forecast 100 ms.
    calm = probability.Scored(lambda rows: np.full(len(rows), 100.0))
    source = evaluate.from_fleet(generator.generate(7, duration_s=2 * 3600.0, interval_s=10.0), "f7")
    reactive = evaluate.run(evaluate.reactive(), source)
    floored = evaluate.run(evaluate.forecast("calm", calm), source)
    blind = evaluate.run(evaluate.forecast("calm", calm, Settings(observed_floor=False)), source)
    assert reactive.caught > 3, "the fleet breaches"
    assert blind.caught == 0
    assert floored.caught >= reactive.caught
    assert floored.free_openings == reactive.free_openings == 0


@pytest.mark.slow  # trains the make-up model
def test_the_gated_router_runs_reactive_until_the_model_is_proven(makeup):
    # A calm fleet: nothing breaches, so nothing proves the model, and its
    # forecasts never reach the breakers.
    latency = flat(2, 100.0)
    source = evaluate.Source(
        "calm", 10.0, TIMES, np.full_like(latency, 20.0), latency, np.zeros_like(latency), ((), ())
    )
    router = evaluate.gated("gated", makeup).make(2)
    assert isinstance(router, evaluate.GatedRouter)
    realtel.stream(router, source.times, source.load, source.latency_ms, source.error_rate)
    assert router.proven_at is None and not router.verdict.proven
    assert {e.basis.value for e in router.table.entries()} == {"MODEL_UNPROVEN"}


def test_relative_to_the_pool_divides_by_the_median_of_every_backend_at_that_step():
    latency = flat(3, 100.0)
    latency[:, 1] = 200.0
    latency[:, 2] = 400.0  # the median at every step is 200 ms
    load = np.full_like(latency, 4.0)
    source = evaluate.Source("pool", 10.0, TIMES, load, latency, np.zeros_like(latency), ((), (), ()))
    out = relative.relative(source, pool=True)
    assert out.latency_ms[0].tolist() == pytest.approx([relative.REF_MS / 2, relative.REF_MS, 2 * relative.REF_MS])
    assert np.allclose(out.load, relative.REF_LOAD)


def test_anatomy_sorts_each_episode_by_the_event_it_lies_in():
    latency = flat(2)
    latency[at(1000) : at(1100) + 1, 0] = 400.0  # inside a leak
    latency[at(3000), 0] = 400.0  # one point, no event within a horizon
    latency[at(2000), 1] = 400.0  # one point, 250 s after backend 1's throttle ended
    events = (
        generator.Event(0, "leak", 900.0, 1200.0, 0.5),
        generator.Event(1, "throttle", 1500.0, 1750.0, 0.5),
        generator.Event(1, "surge", 4000.0, 4200.0, 1.3),  # no episode near it
    )
    f = generator.FleetTelemetry(10.0, TIMES, flat(2, 10.0), latency, np.zeros((len(TIMES), 2)), (), events, T0)
    found = anatomy.anatomy(f, T0, threshold_ms=300.0, horizon_s=300.0)
    assert found.by_kind == {"leak": 1, "throttle": 1, anatomy.NONE: 1}
    assert found.single == {"leak": 0, "throttle": 1, anatomy.NONE: 1}
    assert found.none_on_one == 1 and found.episodes == 3
    # Points before `from_s` are not looked at.
    assert anatomy.anatomy(f, T0 + 1500.0, 300.0, 300.0).episodes == 2


def test_a_breach_counts_as_the_pools_only_when_the_others_median_breaches_too():
    times = np.asarray([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    labels = np.asarray([400.0, 350.0, 100.0, 400.0, 100.0, 100.0])
    # At t=1 the first two breach and each has one breaching other of two
    # (median 225 and 250: not the pool's); at t=2 one breaches alone.
    assert probability.others_breach(times, labels, threshold_ms=300.0) == 0
    labels[2] = 500.0  # now every backend at t=1 breaches
    assert probability.others_breach(times, labels, threshold_ms=300.0) == 3


def test_calibration_reins_in_the_forecasts_but_picks_the_probability_cut_off_either_way():
    threshold = evaluate.THRESHOLD_MS
    held_x = np.arange(100, dtype=np.float32).reshape(-1, 1)
    # A breach follows exactly the rows whose first feature is 50 or more.
    held_y = np.where(held_x[:, 0] >= 50, 2 * threshold, 0.0)
    learnt = probability.Learnt(
        {
            "the forest's mean": lambda rows: (
                rows[:, 0].astype(np.float64) * (threshold / 25.0)
            ),  # reaches the threshold at 25
            "breach probability >= 0.3": lambda rows: rows[:, 0].astype(np.float64) * (threshold / 100.0),  # at 100
        },
        held_x,
        held_y,
        breach_rows=50,
        others_breach_rows=0,
    )
    made = {}
    for config in probability.configs(learnt):
        scored = config.make(2).model
        assert isinstance(scored, probability.Scored)
        made[config.name] = scored
    assert made["the forest's mean"].scale == 1.0
    # The rows from 38 up are 62, of which the 50 breaches are 0.806 (from
    # 37 up, 0.794): the cut-off is the score at 38, under the mean's
    # threshold and over the probability's.
    assert made["the forest's mean, calibrated"].scale == pytest.approx(25.0 / 38.0)
    assert made["breach probability, p* calibrated"].scale == pytest.approx(100.0 / 38.0)
    assert made["breach probability, p* calibrated"].score([("v", [38.0])])[0] == pytest.approx(threshold)
