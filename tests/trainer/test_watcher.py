"""The retrain watcher's rules with an injected health reading, retrain
and clock: a drift after the first reading schedules a retrain, which
starts once delay_s of event time has passed; min_gap_s of wall clock
separates two retrains; a busy trainer or a failing retrain is reported."""

from __future__ import annotations

import pytest

from services.common.errors import FailedPrecondition
from services.trainer import config
from services.trainer.watcher import DriftView, RetrainSettings, RetrainWatcher

DELAY_S = 600.0
GAP_S = 1800.0


class World:
    def __init__(self) -> None:
        self.view = DriftView(enabled=True, fires=0, horizon_s=60.0, fired_at=0.0, newest_at=1000.0)
        self.wall = 0.0
        self.busy = False
        self.fail: Exception | None = None
        self.horizons: list[float] = []

    def drift(self, at: float) -> None:
        self.view = DriftView(True, self.view.fires + 1, self.view.horizon_s, at, at)

    def advance(self, event_s: float) -> None:
        v = self.view
        self.view = DriftView(v.enabled, v.fires, v.horizon_s, v.fired_at, v.newest_at + event_s)

    def retrain(self, horizon_s: float) -> str:
        if self.fail is not None:
            raise self.fail
        self.horizons.append(horizon_s)
        return f"v{len(self.horizons)}"

    def watcher(self) -> RetrainWatcher:
        settings = RetrainSettings(on_drift=True, min_gap_s=GAP_S, history_s=DELAY_S, delay_s=DELAY_S)
        return RetrainWatcher(
            settings, read=lambda: self.view, retrain=self.retrain, busy=lambda: self.busy, now=lambda: self.wall
        )


def test_a_drift_starts_a_retrain_once_the_delay_has_passed_in_event_time() -> None:
    world = World()
    w = world.watcher()
    assert w.poll() == "idle"
    world.drift(at=2000.0)
    assert w.poll() == "waiting"
    world.advance(DELAY_S - 10)
    assert w.poll() == "waiting"
    world.advance(10)
    assert w.poll() == "started"
    assert world.horizons == [60.0], "at the active version's horizon"
    assert w.poll() == "idle"
    assert (w.retrains, w.last_version) == (1, "v1")


def test_a_drift_before_the_first_reading_is_not_acted_on() -> None:
    world = World()
    world.drift(at=2000.0)
    w = world.watcher()
    world.advance(DELAY_S)
    assert w.poll() == "idle"


def test_the_min_gap_skips_a_drift_that_fires_too_soon() -> None:
    world = World()
    w = world.watcher()
    w.poll()
    world.drift(at=2000.0)
    world.advance(DELAY_S)
    assert w.poll() == "started"
    world.wall += GAP_S - 1
    world.drift(at=5000.0)
    assert w.poll() == "skipped"
    world.advance(DELAY_S)
    assert w.poll() == "idle", "skipped, not queued"
    world.wall += 1
    world.drift(at=9000.0)
    world.advance(DELAY_S)
    assert w.poll() == "started"


def test_a_busy_trainer_or_a_failed_retrain_is_reported() -> None:
    world = World()
    w = world.watcher()
    w.poll()
    world.busy = True
    world.drift(at=2000.0)
    world.advance(DELAY_S)
    assert w.poll() == "skipped"
    world.busy = False
    world.fail = FailedPrecondition("feature_store: keeps no history")
    world.drift(at=3000.0)
    world.advance(DELAY_S)
    assert w.poll() == "failed"
    assert w.retrains == 0


def test_a_predictor_without_its_loop_never_starts_one() -> None:
    world = World()
    w = world.watcher()
    w.poll()
    world.view = DriftView(enabled=False, fires=3, horizon_s=60.0, fired_at=2000.0, newest_at=9000.0)
    assert w.poll() == "idle"


def test_flags_build_the_settings_and_bad_values_name_the_flag() -> None:
    cfg = config.load(["--retrain-on-drift", "true", "--retrain-min-gap-s", "0", "--retrain-delay-s", "60"])
    assert cfg.retrain == RetrainSettings(on_drift=True, min_gap_s=0.0, history_s=1800.0, delay_s=60.0, poll_s=5.0)
    assert not config.load([]).retrain.on_drift
    with pytest.raises(SystemExit):
        config.load(["--drift-poll-s", "0"])
