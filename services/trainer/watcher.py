"""The trainings the trainer starts on its own, from one poll of the
predictor: auto-training, which gives a fleet a model trained on its own
history and keeps it fresh, and the drift retrain. Both read the feature
store's history and publish a shadow candidate that the predictor's gate
promotes or refuses; both respect min_gap_s.

Auto-training: when the active version did not learn this fleet (its
metadata's history source is synthetic, a CSV file or unsaid), the first
fleet training starts once the feature store holds auto_min_history_s of
event time (FLEET_FIRST). Two hours by default: bench/fleet_history.py trains
on the first H of a fleet unlike the synthetic one and scores every model on
the same held-out last two hours (5 fleets, 5-minute horizon). The synthetic
model `make up` ships had a log MAE of 0.786 and a breach precision of 0.56.
With 30 min of the fleet's history the fleet model was far worse (1.319);
with 1 h better on average (0.709, precision 0.62) but worse on one fleet in
five; with 2 h better on all five (0.595, precision 0.69); 3 h added little
(0.586). Of two hours, the trainer's temporal split holds out the last
quarter of the rows that have a full 5-minute horizon: about 29 minutes.

A fleet version is refreshed once the fleet's newest telemetry is
auto_refresh_s of event time past the end of its history (FLEET_REFRESH),
learning the last auto_history_s. Six hours for both, a judgment rather
than a measurement: past 2 h more history of a steady fleet barely helps,
so refreshes are for a fleet that changes slowly (the drift detector is
sized for abrupt changes); every promotion changes what the breakers do, so
four candidates a day is enough, and one training of 6 h of 6 backends costs
1.6 s of CPU here. After any training the watcher ran, the next
auto-training waits until the fleet's telemetry is auto_refresh_s past that
training's history, so a refused candidate is retried with more history,
not at every poll.

Drift: the trainer polls the predictor's GetModelHealth
and, when the error drift detector has fired since the last poll and the
last retrain started at least min_gap_s ago (trainer wall clock), waits
until delay_s of event time has passed since the drift, then trains on the
last history_s of the feature store's history and publishes the result as
a shadow candidate, which the predictor's gate then promotes or refuses.

The wait is what makes the new model learn the new regime: the detector
fires within minutes of a change, when the recent history is still mostly
the old fleet. In a first version of the end-to-end test a retrain started
at once, on 900 s of history, was worse than the model it was meant to
replace (log MAE 0.53 against 0.39) and the gate refused it; started after
the delay it learns only the new regime and is promoted. By default delay_s equals
history_s, so a retrain learns only what followed the drift.

The trigger lives in the trainer because it already calls the predictor
(to publish) and the feature store (to read history), so the dependency
stays one-way. Only the error detector triggers: feature drift that does
not make the forecasts worse is no reason for a new model, and the gate
would only be asked to judge noise. A drift that fires inside the gap is
skipped, not queued: the next firing after the gap starts a retrain.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import structlog

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.common import config
from services.common.config import require
from services.common.errors import AceError, FailedPrecondition
from services.common.serving import RunningServer
from services.common.timeutil import to_seconds
from services.common.worker import Worker
from services.trainer import job, publish
from services.trainer.job import Defaults, FeatureStoreSource, Publisher, ShortHistory, Trainer, Trigger
from services.trainer.train import HistorySource

_log = structlog.get_logger("trainer.watcher")


@dataclass(frozen=True)
class RetrainSettings:
    on_drift: bool = False  # whether a drift starts a retrain
    min_gap_s: float = 1800.0  # wall clock between the starts of two retrains
    history_s: float = 1800.0  # event time of feature-store history a drift retrain learns from
    delay_s: float = 1800.0  # event time after the drift before the retrain starts
    poll_s: float = 5.0  # wall clock between GetModelHealth polls
    auto: bool = False  # whether auto-training runs (the module docstring says why the defaults below)
    auto_min_history_s: float = 7200.0  # event time of fleet history before the first fleet training
    auto_refresh_s: float = 21600.0  # event time between auto-trainings
    # Event time an auto-training learns from, at most; at 6 h a fleet of
    # 200 backends every 10 s is 432,000 points, a fifth of what a training
    # may read.
    auto_history_s: float = 21600.0

    @property
    def polls(self) -> bool:
        return self.on_drift or self.auto


NO_RETRAIN = RetrainSettings()


@dataclass(frozen=True)
class DriftView:
    """What the watcher needs of the predictor's health."""

    enabled: bool  # the predictor runs its learning loop
    fires: int  # of the error drift detector, since the predictor started
    horizon_s: float  # of the active version; 0 when none is active
    fired_at: float  # event time of the last firing; 0 when it never fired
    newest_at: float  # event time of the newest point the predictor has seen; 0 before any
    active_source: HistorySource | None = None  # of the active version; None: unsaid or none active
    active_history_end: float = 0.0  # event time its history ends; 0: unknown


@dataclass(frozen=True)
class Retrained:
    version: str
    history_end_at: float  # event time of the newest point it learnt from


# Trains on the source at the horizon and publishes a shadow; raises an
# AceError (ShortHistory among them) when it fails or does not publish.
Retrain = Callable[[Trigger, float, FeatureStoreSource], Retrained]


@dataclass(frozen=True)
class WatcherStatus:
    """ace.v1.RetrainStatus as plain values."""

    auto: bool
    on_drift: bool
    waiting_for: str
    next_due_at: float | None  # event time; None: unknown or off
    started: int
    active_source: HistorySource | None
    polled: bool  # a poll has read the predictor; active_source means nothing before


def add_options(p: argparse.ArgumentParser) -> None:
    config.option(
        p,
        "--retrain-on-drift",
        env="ACE_RETRAIN_ON_DRIFT",
        cast=config.boolean,
        default=False,
        help="poll the predictor's GetModelHealth and retrain when its error drift detector fires",
    )
    config.option(
        p,
        "--retrain-min-gap-s",
        env="ACE_RETRAIN_MIN_GAP_S",
        cast=float,
        default=1800.0,
        help="least wall-clock time between the starts of two retrains (drift or auto), seconds",
    )
    config.option(
        p,
        "--retrain-history-s",
        env="ACE_RETRAIN_HISTORY_S",
        cast=float,
        default=1800.0,
        help="event time of feature-store history a drift retrain learns from, seconds",
    )
    config.option(
        p,
        "--retrain-delay-s",
        env="ACE_RETRAIN_DELAY_S",
        cast=float,
        default=1800.0,
        help="event time to wait after a drift before retraining, so the history holds the new regime, seconds",
    )
    config.option(
        p,
        "--drift-poll-s",
        env="ACE_DRIFT_POLL_S",
        cast=float,
        default=5.0,
        help="wall-clock seconds between polls of the predictor (drift and auto-training)",
    )
    config.option(
        p,
        "--auto-train",
        env="ACE_AUTO_TRAIN",
        cast=config.boolean,
        default=False,
        help="train on the fleet's own history once the feature store holds enough, and again every "
        "--auto-train-refresh-s; each result is published as a shadow for the predictor's gate",
    )
    config.option(
        p,
        "--auto-train-min-history-s",
        env="ACE_AUTO_TRAIN_MIN_HISTORY_S",
        cast=float,
        default=7200.0,
        help="event time of fleet history the first fleet training needs, seconds",
    )
    config.option(
        p,
        "--auto-train-refresh-s",
        env="ACE_AUTO_TRAIN_REFRESH_S",
        cast=float,
        default=21600.0,
        help="event time past the end of the active fleet version's history after which it is retrained, seconds",
    )
    config.option(
        p,
        "--auto-train-history-s",
        env="ACE_AUTO_TRAIN_HISTORY_S",
        cast=float,
        default=21600.0,
        help="event time of fleet history an auto-training learns from, at most, seconds",
    )


def settings_from(args: argparse.Namespace) -> RetrainSettings:
    for name in ("retrain_min_gap_s", "retrain_delay_s"):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value >= 0, f"--{name.replace('_', '-')}: must be finite and >= 0, got {value!r}"
        )
    for name in (
        "retrain_history_s",
        "drift_poll_s",
        "auto_train_min_history_s",
        "auto_train_refresh_s",
        "auto_train_history_s",
    ):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value > 0, f"--{name.replace('_', '-')}: must be finite and > 0, got {value!r}"
        )
    require(
        args.auto_train_history_s >= args.auto_train_min_history_s,
        f"--auto-train-history-s: must be >= --auto-train-min-history-s ({args.auto_train_min_history_s:g}), "
        f"got {args.auto_train_history_s!r}",
    )
    return RetrainSettings(
        on_drift=args.retrain_on_drift,
        min_gap_s=args.retrain_min_gap_s,
        history_s=args.retrain_history_s,
        delay_s=args.retrain_delay_s,
        poll_s=args.drift_poll_s,
        auto=args.auto_train,
        auto_min_history_s=args.auto_train_min_history_s,
        auto_refresh_s=args.auto_train_refresh_s,
        auto_history_s=args.auto_train_history_s,
    )


class RetrainWatcher:
    """One poll at a time (poll() is not reentrant; poll_until calls it);
    status() may be called from any thread. `retrain` trains and publishes
    as a shadow; `busy()` says whether a training (an operator's Train) is
    running, in which case a retrain is skipped."""

    def __init__(
        self,
        settings: RetrainSettings,
        read: Callable[[], DriftView],
        retrain: Retrain,
        busy: Callable[[], bool],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._read = read
        self._retrain = retrain
        self._busy = busy
        self._now = now
        self._seen_fires: int | None = None
        self._last_start: float | None = None
        self._pending: float | None = None  # event time of the drift waiting for its retrain
        # Event time before which no auto-training starts: set by every
        # training this watcher ran, and by a history found too short.
        self._not_before = 0.0
        self._short: ShortHistory | None = None  # the last look, while no auto-training has started since
        self._guard = threading.Lock()  # over the four fields below
        self._waiting_for = "the first poll"
        self._next_due_at: float | None = None
        self._active_source: HistorySource | None = None
        self._polled = False
        self.retrains = 0  # started, for status and tests
        self.last_version = ""  # of the last successful retrain

    def status(self) -> WatcherStatus:
        s = self.settings
        with self._guard:
            return WatcherStatus(
                auto=s.auto,
                on_drift=s.on_drift,
                waiting_for=self._waiting_for if s.polls else "",
                next_due_at=self._next_due_at if s.auto else None,
                started=self.retrains,
                active_source=self._active_source,
                polled=self._polled,
            )

    def poll(self) -> str:
        """Reads the health once; returns what it did: "idle", "waiting"
        (for event time to pass), "started", "skipped" or "failed"."""
        view = self._read()
        with self._guard:
            self._active_source = view.active_source
            self._polled = True
        drift = self._drift(view)
        if drift == "due":
            self._pending = None
            return self._start(view, Trigger.DRIFT, self.settings.history_s, 0.0)
        # While a drift retrain waits for the new regime to fill the
        # history, an auto-training would learn mostly the old one.
        if drift != "idle" or not self.settings.auto:
            return drift
        trigger = self._auto_due(view)
        if trigger is None:
            return "waiting"
        return self._start(view, trigger, self.settings.auto_history_s, self.settings.auto_min_history_s)

    def _drift(self, view: DriftView) -> str:
        """What the drift trigger asks: "idle", "waiting", "skipped" or "due"."""
        seen, self._seen_fires = self._seen_fires, view.fires
        # The first reading is the baseline: a drift from before this
        # trainer started was the previous trainer's to act on.
        if self.settings.on_drift and seen is not None and view.fires > seen and view.enabled:
            if self._in_gap():
                next_at = (self._last_start or 0.0) + self.settings.min_gap_s
                _log.info("retrain_skipped", reason=f"min gap: next at {next_at:.0f}", fires=view.fires)
                return "skipped"
            if self._pending is None:
                self._pending = view.fired_at
                _log.info(
                    "retrain_scheduled",
                    reason="drift",
                    fires=view.fires,
                    drift_at=view.fired_at,
                    start_at=view.fired_at + self.settings.delay_s,
                )
        if self._pending is None:
            if not self.settings.auto:
                self._wait("a drift of the active version's error", None)
            return "idle"
        if view.newest_at < self._pending + self.settings.delay_s:
            start_at = self._pending + self.settings.delay_s
            self._wait(f"event time {start_at:.0f} to start the drift retrain", self._next_due_at)
            return "waiting"
        return "due"

    def _auto_due(self, view: DriftView) -> Trigger | None:
        """The auto-training due now, if any; otherwise records what it waits for."""
        if not view.enabled:
            self._wait("the predictor's learning loop (it has no --feature-store-addr)", None)
            return None
        if view.horizon_s <= 0:
            self._wait("an active version", None)
            return None
        fleet = view.active_source is HistorySource.FLEET
        due_at = self._not_before
        if fleet and view.active_history_end > 0:
            due_at = max(due_at, view.active_history_end + self.settings.auto_refresh_s)
        trigger = Trigger.FLEET_REFRESH if fleet else Trigger.FLEET_FIRST
        if view.newest_at <= 0 or view.newest_at < due_at:
            short = self._short
            self._wait(
                f"the fleet's history: it covered {short.covered_s:.0f} of {short.needed_s:.0f} s at the last look"
                if short is not None
                else f"event time to reach the next {trigger.name.lower()} training",
                due_at,
            )
            return None
        if self._in_gap():
            self._wait("the min gap between retrains (wall clock)", due_at)
            return None
        return trigger

    def _wait(self, what: str, due_at: float | None) -> None:
        with self._guard:
            self._waiting_for = what
            self._next_due_at = due_at

    def _in_gap(self) -> bool:
        """True while the last retrain started less than min_gap_s ago."""
        return self._last_start is not None and self._now() < self._last_start + self.settings.min_gap_s

    def _start(self, view: DriftView, trigger: Trigger, history_s: float, min_span_s: float) -> str:
        now = self._now()
        reason = trigger.name.lower()
        if view.horizon_s <= 0:
            _log.info("retrain_skipped", reason="no active model", trigger=reason)
            return "skipped"
        if self._busy():
            _log.info("retrain_skipped", reason="a training is already running", trigger=reason)
            return "skipped"
        _log.info(
            "retrain_started",
            reason=reason,
            fires=view.fires,
            history_s=history_s,
            horizon_s=view.horizon_s,
            active_history_source=view.active_source.name.lower() if view.active_source else "unsaid",
        )
        source = FeatureStoreSource(duration_s=history_s, min_span_s=min_span_s)
        try:
            done = self._retrain(trigger, view.horizon_s, source)
        except ShortHistory as exc:
            # Not a retrain: the min gap does not start, and the next look
            # is when the history can have grown enough.
            self._not_before = view.newest_at + exc.needed_s - exc.covered_s
            self._short = exc
            self._wait(f"the fleet's history: it covers {exc.covered_s:.0f} of {exc.needed_s:.0f} s", self._not_before)
            _log.info("retrain_waiting", reason=str(exc), trigger=reason, next_at=self._not_before)
            return "waiting"
        except AceError as exc:
            self._last_start = now
            _log.warning("retrain_failed", reason=str(exc), trigger=reason)
            return "failed"
        self._last_start = now
        self._short = None
        self.retrains += 1
        self.last_version = done.version
        self._not_before = done.history_end_at + self.settings.auto_refresh_s
        self._wait(f"the gate's verdict on {done.version}, then event time", self._not_before)
        return "started"


def read_health(stub: predictor_pb2_grpc.PredictorStub, timeout_s: float = 5.0) -> DriftView:
    """GetModelHealth and GetActiveModel as a DriftView; raises grpc.RpcError."""
    health = stub.GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=timeout_s)
    active = next((v for v in health.versions if v.role == predictor_pb2.ACTIVE), None)
    source, end = None, 0.0
    try:
        info = stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=timeout_s)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # none active
            raise
    else:
        source = _SOURCES.get(info.metadata.history_source)
        end = to_seconds(info.metadata.history_end_at) if info.metadata.HasField("history_end_at") else 0.0
    return DriftView(
        enabled=health.enabled,
        fires=health.error_drift.fires,
        horizon_s=active.horizon_s if active else 0.0,
        fired_at=to_seconds(health.error_drift.last_fired_at),
        newest_at=to_seconds(health.newest_point_at),
        active_source=source,
        active_history_end=end,
    )


_SOURCES = {wire: kind for kind, wire in publish.HISTORY_SOURCES.items()}


def poll_until(stopping: threading.Event, watcher: RetrainWatcher) -> None:
    """Polls every poll_s until `stopping` is set; a failed poll is logged
    and the next one tries again. With auto-training this thread is what
    keeps the fleet's model fresh, so an unexpected error (a bug, a library
    raising something new) is logged with its traceback, not let end it."""
    while not stopping.wait(watcher.settings.poll_s):
        try:
            watcher.poll()
        except grpc.RpcError as exc:
            _log.warning("drift_poll_failed", code=exc.code().name, details=exc.details())
        except Exception:  # noqa: BLE001 - see the docstring
            _log.exception("retrain_poll_error")


def retrain_with(trainer: Trainer, shadow_publisher: Publisher, defaults: Defaults) -> Retrain:
    """The retrain the watcher starts: the existing training job on the
    source, at the active version's horizon (a candidate with another
    horizon would share no labels with it), published as a shadow."""

    def retrain(trigger: Trigger, horizon_s: float, source: FeatureStoreSource) -> Retrained:
        plan = job.make_job(
            source,
            publish=True,
            n_estimators=0,
            max_depth=0,
            horizon_s=horizon_s,
            threshold_ms=0.0,
            seed=0,
            defaults=defaults,
        )
        result = None
        for step in trainer.run(plan, publisher=shadow_publisher, trigger=trigger):
            result = step.result or result
        if result is None or not result.published:
            raise FailedPrecondition(
                f"retrained model not published: {result.publish_error if result else 'no result'}"
            )
        return Retrained(result.model.version, result.model.provenance.end_at)

    return retrain


def build(
    settings: RetrainSettings,
    predictor: predictor_pb2_grpc.PredictorStub,
    trainer: Trainer,
    shadow_publisher: Publisher,
    defaults: Defaults,
) -> RetrainWatcher:
    return RetrainWatcher(
        settings,
        read=lambda: read_health(predictor),
        retrain=retrain_with(trainer, shadow_publisher, defaults),
        busy=lambda: trainer.status().training,
    )


def start(running: RunningServer, watcher: RetrainWatcher) -> None:
    """Starts the watcher's thread beside a running trainer server; it stops
    when the server begins to close."""
    worker = Worker("retrain-watcher", lambda: poll_until(worker.stopping, watcher))
    worker.start()
    running.on_closing.append(worker.stop)
