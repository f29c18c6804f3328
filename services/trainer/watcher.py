"""Drift starts a retrain: the trainer polls the predictor's GetModelHealth
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
from services.trainer import job
from services.trainer.job import Defaults, Publisher, Trainer

_log = structlog.get_logger("trainer.watcher")


@dataclass(frozen=True)
class RetrainSettings:
    on_drift: bool = False  # whether the watcher runs at all
    min_gap_s: float = 1800.0  # wall clock between the starts of two retrains
    history_s: float = 1800.0  # event time of feature-store history a retrain learns from
    delay_s: float = 1800.0  # event time after the drift before the retrain starts
    poll_s: float = 5.0  # wall clock between GetModelHealth polls


NO_RETRAIN = RetrainSettings()


@dataclass(frozen=True)
class DriftView:
    """What the watcher needs of the predictor's health."""

    enabled: bool  # the predictor runs its learning loop
    fires: int  # of the error drift detector, since the predictor started
    horizon_s: float  # of the active version; 0 when none is active
    fired_at: float  # event time of the last firing; 0 when it never fired
    newest_at: float  # event time of the newest point the predictor has seen; 0 before any


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
        help="least wall-clock time between the starts of two drift retrains, seconds",
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
        help="wall-clock seconds between GetModelHealth polls",
    )


def settings_from(args: argparse.Namespace) -> RetrainSettings:
    for name in ("retrain_min_gap_s", "retrain_delay_s"):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value >= 0, f"--{name.replace('_', '-')}: must be finite and >= 0, got {value!r}"
        )
    for name in ("retrain_history_s", "drift_poll_s"):
        value = getattr(args, name)
        require(
            math.isfinite(value) and value > 0, f"--{name.replace('_', '-')}: must be finite and > 0, got {value!r}"
        )
    return RetrainSettings(
        on_drift=args.retrain_on_drift,
        min_gap_s=args.retrain_min_gap_s,
        history_s=args.retrain_history_s,
        delay_s=args.retrain_delay_s,
        poll_s=args.drift_poll_s,
    )


class RetrainWatcher:
    """One poll at a time (poll() is not reentrant; poll_until calls it).
    `retrain(horizon_s)` trains and publishes as a shadow, returning the
    version, or raises an AceError; `busy()` says whether a training (an
    operator's Train) is running, in which case a drift is skipped."""

    def __init__(
        self,
        settings: RetrainSettings,
        read: Callable[[], DriftView],
        retrain: Callable[[float], str],
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
        self.retrains = 0  # started, for status and tests
        self.last_version = ""  # of the last successful retrain

    def poll(self) -> str:
        """Reads the health once; returns what it did: "idle", "waiting"
        (a drift waits for delay_s of event time), "started", "skipped" or
        "failed"."""
        view = self._read()
        seen, self._seen_fires = self._seen_fires, view.fires
        # The first reading is the baseline: a drift from before this
        # trainer started was the previous trainer's to act on.
        if seen is not None and view.fires > seen and view.enabled:
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
            return "idle"
        if view.newest_at < self._pending + self.settings.delay_s:
            return "waiting"
        self._pending = None
        return self._start(view)

    def _in_gap(self) -> bool:
        """True while the last retrain started less than min_gap_s ago."""
        return self._last_start is not None and self._now() < self._last_start + self.settings.min_gap_s

    def _start(self, view: DriftView) -> str:
        now = self._now()
        if view.horizon_s <= 0:
            _log.info("retrain_skipped", reason="no active model", fires=view.fires)
            return "skipped"
        if self._busy():
            _log.info("retrain_skipped", reason="a training is already running", fires=view.fires)
            return "skipped"
        _log.info(
            "retrain_started",
            reason="drift",
            fires=view.fires,
            history_s=self.settings.history_s,
            horizon_s=view.horizon_s,
        )
        try:
            version = self._retrain(view.horizon_s)
        except AceError as exc:
            self._last_start = now
            _log.warning("retrain_failed", reason=str(exc))
            return "failed"
        self._last_start = now
        self.retrains += 1
        self.last_version = version
        return "started"


def read_health(stub: predictor_pb2_grpc.PredictorStub, timeout_s: float = 5.0) -> DriftView:
    """GetModelHealth as a DriftView; raises grpc.RpcError."""
    health = stub.GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=timeout_s)
    active = next((v for v in health.versions if v.role == predictor_pb2.ACTIVE), None)
    return DriftView(
        enabled=health.enabled,
        fires=health.error_drift.fires,
        horizon_s=active.horizon_s if active else 0.0,
        fired_at=to_seconds(health.error_drift.last_fired_at),
        newest_at=to_seconds(health.newest_point_at),
    )


def poll_until(stopping: threading.Event, watcher: RetrainWatcher) -> None:
    """Polls every poll_s until `stopping` is set; a failed poll is logged
    and the next one tries again."""
    while not stopping.wait(watcher.settings.poll_s):
        try:
            watcher.poll()
        except grpc.RpcError as exc:
            _log.warning("drift_poll_failed", code=exc.code().name, details=exc.details())


def retrain_with(
    trainer: Trainer, shadow_publisher: Publisher, settings: RetrainSettings, defaults: Defaults
) -> Callable[[float], str]:
    """The retrain a drift starts: the existing training job on the last
    history_s of the feature store's history, at the active version's
    horizon (a candidate with another horizon would share no labels with
    it), published as a shadow. Raises AceError when it fails or does not
    publish."""

    def retrain(horizon_s: float) -> str:
        plan = job.make_job(
            job.FeatureStoreSource(duration_s=settings.history_s),
            publish=True,
            n_estimators=0,
            max_depth=0,
            horizon_s=horizon_s,
            threshold_ms=0.0,
            seed=0,
            defaults=defaults,
        )
        result = None
        for step in trainer.run(plan, publisher=shadow_publisher):
            result = step.result or result
        if result is None or not result.published:
            raise FailedPrecondition(
                f"retrained model not published: {result.publish_error if result else 'no result'}"
            )
        return result.model.version

    return retrain


def start(
    running: RunningServer,
    settings: RetrainSettings,
    predictor: predictor_pb2_grpc.PredictorStub,
    trainer: Trainer,
    shadow_publisher: Publisher,
    defaults: Defaults,
) -> RetrainWatcher:
    """Starts the watcher thread beside a running trainer server; it stops
    when the server begins to close."""
    watcher = RetrainWatcher(
        settings,
        read=lambda: read_health(predictor),
        retrain=retrain_with(trainer, shadow_publisher, settings, defaults),
        busy=lambda: trainer.status().training,
    )
    worker = Worker("retrain-watcher", lambda: poll_until(worker.stopping, watcher))
    worker.start()
    running.on_closing.append(worker.stop)
    return watcher
