"""The retrain watcher's rules with an injected health reading, retrain
and clock: a drift after the first reading schedules a retrain, which
starts once delay_s of event time has passed; min_gap_s of wall clock
separates two retrains; a busy trainer or a failing retrain is reported.
Auto-training: a first fleet training once the history is long enough, a
refresh once the fleet's telemetry has run refresh_s past the active fleet
version's history, and neither while a drift retrain waits."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from services.common.errors import FailedPrecondition
from services.trainer import config
from services.trainer.job import FeatureStoreSource, ShortHistory, Trigger
from services.trainer.train import HistorySource
from services.trainer.watcher import DriftView, Retrained, RetrainSettings, RetrainWatcher, poll_until

DELAY_S = 600.0
GAP_S = 1800.0
MIN_HISTORY_S = 7200.0
REFRESH_S = 3600.0


class World:
    def __init__(self) -> None:
        self.view = DriftView(enabled=True, fires=0, horizon_s=60.0, fired_at=0.0, newest_at=1000.0)
        self.wall = 0.0
        self.busy = False
        self.fail: Exception | None = None
        self.horizons: list[float] = []
        self.calls: list[tuple[Trigger, FeatureStoreSource]] = []
        self.covered_s: float | None = None  # the store's history span, when a training should find it short

    def drift(self, at: float) -> None:
        self.view = dataclasses.replace(self.view, fires=self.view.fires + 1, fired_at=at, newest_at=at)

    def advance(self, event_s: float) -> None:
        self.view = dataclasses.replace(self.view, newest_at=self.view.newest_at + event_s)

    def retrain(self, trigger: Trigger, horizon_s: float, source: FeatureStoreSource) -> Retrained:
        self.calls.append((trigger, source))
        if self.fail is not None:
            raise self.fail
        if self.covered_s is not None and self.covered_s < source.min_span_s:
            raise ShortHistory(self.covered_s, source.min_span_s)
        self.horizons.append(horizon_s)
        return Retrained(f"v{len(self.horizons)}", self.view.newest_at)

    def watcher(self, *, auto: bool = False, on_drift: bool = True) -> RetrainWatcher:
        settings = RetrainSettings(
            on_drift=on_drift,
            min_gap_s=GAP_S,
            history_s=DELAY_S,
            delay_s=DELAY_S,
            auto=auto,
            auto_min_history_s=MIN_HISTORY_S,
            auto_refresh_s=REFRESH_S,
            auto_history_s=2 * MIN_HISTORY_S,
        )
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
    auto = world.watcher(auto=True)
    assert auto.poll() == "waiting"
    assert world.calls == []
    assert "learning loop" in auto.status().waiting_for


def test_flags_build_the_settings_and_bad_values_name_the_flag() -> None:
    cfg = config.load(["--retrain-on-drift", "true", "--retrain-min-gap-s", "0", "--retrain-delay-s", "60"])
    assert cfg.retrain == RetrainSettings(on_drift=True, min_gap_s=0.0, history_s=1800.0, delay_s=60.0, poll_s=5.0)
    assert not config.load([]).retrain.on_drift
    assert not config.load([]).retrain.polls
    with pytest.raises(SystemExit):
        config.load(["--drift-poll-s", "0"])
    auto = config.load(["--auto-train", "true", "--auto-train-min-history-s", "1800", "--auto-train-refresh-s", "600"])
    assert auto.retrain == RetrainSettings(
        auto=True, auto_min_history_s=1800.0, auto_refresh_s=600.0, auto_history_s=21600.0
    )
    assert auto.retrain.polls
    for bad in (["--auto-train-refresh-s", "0"], ["--auto-train-min-history-s", "30000"]):
        with pytest.raises(SystemExit):
            config.load(bad)


def test_the_first_fleet_training_waits_until_the_history_covers_the_minimum() -> None:
    world = World()
    world.view = dataclasses.replace(world.view, active_source=HistorySource.SYNTHETIC)
    world.covered_s = 1000.0
    w = world.watcher(auto=True, on_drift=False)
    assert w.poll() == "waiting", "a look at the history finds it short"
    ((trigger, source),) = world.calls
    assert trigger is Trigger.FLEET_FIRST
    assert (source.duration_s, source.min_span_s) == (2 * MIN_HISTORY_S, MIN_HISTORY_S)
    assert w.status().next_due_at == 1000.0 + MIN_HISTORY_S - 1000.0
    assert "1000 of 7200 s" in w.status().waiting_for
    world.advance(MIN_HISTORY_S - 1000.0 - 1)
    world.covered_s = MIN_HISTORY_S - 1
    assert w.poll() == "waiting"
    assert len(world.calls) == 1, "no second look before the history can have grown enough"
    assert w.status().waiting_for == "the fleet's history: it covered 1000 of 7200 s at the last look"
    world.advance(1)
    world.covered_s = MIN_HISTORY_S
    world.wall += 1  # a short history is no retrain: the min gap has not started
    assert w.poll() == "started"
    assert (w.retrains, w.last_version, world.calls[-1][0]) == (1, "v1", Trigger.FLEET_FIRST)


def test_a_candidate_is_not_followed_by_another_before_refresh_s_and_a_fleet_version_is_refreshed() -> None:
    world = World()
    world.view = dataclasses.replace(world.view, active_source=HistorySource.SYNTHETIC)
    w = world.watcher(auto=True, on_drift=False)
    assert w.poll() == "started"
    trained_to = world.view.newest_at
    world.wall += 10 * GAP_S
    world.advance(REFRESH_S - 10)
    assert w.poll() == "waiting", "refused or not yet judged: retried only with refresh_s more history"
    # The gate promoted v1: the active version learnt the fleet up to trained_to.
    world.view = dataclasses.replace(world.view, active_source=HistorySource.FLEET, active_history_end=trained_to)
    assert w.poll() == "waiting"
    world.advance(10)
    assert w.poll() == "started"
    assert [c[0] for c in world.calls] == [Trigger.FLEET_FIRST, Trigger.FLEET_REFRESH]
    assert w.status().next_due_at == world.view.newest_at + REFRESH_S


def test_the_min_gap_and_a_waiting_drift_hold_auto_training_back() -> None:
    world = World()
    world.view = dataclasses.replace(world.view, active_source=HistorySource.FLEET, active_history_end=1000.0)
    w = world.watcher(auto=True)
    assert w.poll() == "waiting"
    world.drift(at=1000.0 + REFRESH_S)
    assert w.poll() == "waiting", "the drift retrain waits for the new regime, and so does auto-training"
    assert world.calls == []
    world.advance(DELAY_S)
    assert w.poll() == "started"
    assert [c[0] for c in world.calls] == [Trigger.DRIFT]
    world.advance(REFRESH_S)
    assert w.poll() == "waiting", "inside the min gap"
    world.wall += GAP_S
    assert w.poll() == "started"
    assert [c[0] for c in world.calls] == [Trigger.DRIFT, Trigger.FLEET_REFRESH]


def test_auto_training_needs_an_active_version_and_reports_a_failure() -> None:
    world = World()
    world.view = dataclasses.replace(world.view, horizon_s=0.0)
    w = world.watcher(auto=True, on_drift=False)
    assert w.poll() == "waiting"
    assert w.status().waiting_for == "an active version"
    world.view = dataclasses.replace(world.view, horizon_s=60.0)
    world.fail = FailedPrecondition("retrained model not published: UNAVAILABLE")
    assert w.poll() == "failed"
    world.fail = None
    assert w.poll() == "waiting", "a failure starts the min gap"
    world.wall += GAP_S
    assert w.poll() == "started"


def test_an_unexpected_error_in_a_poll_does_not_end_the_polling() -> None:
    stopping = threading.Event()
    reads: list[int] = []

    def read() -> DriftView:
        reads.append(1)
        if len(reads) == 1:
            raise RuntimeError("a bug")
        stopping.set()
        return World().view

    settings = RetrainSettings(auto=True, poll_s=0.001)
    watcher = RetrainWatcher(settings, read=read, retrain=World().retrain, busy=lambda: False, now=lambda: 0.0)
    poll_until(stopping, watcher)
    assert len(reads) == 2
