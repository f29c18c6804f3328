"""The learning loop inside the predictor, as plain logic: it records the
forecasts Predict makes, turns telemetry into labels (scoring.Scorer), and
on every evaluation tick

1. logs `model_evaluated` for each version that got new labels;
2. feeds the active version's spaced absolute log errors, in event-time
   order, to the error drift detector (`drift_detected kind=error`);
3. judges the candidate once, at its first tick with `min_labels` labels
   shared with the active version (gate.promotion): PROMOTE activates it
   (`model_promoted`), REFUSE leaves it in shadow (`candidate_refused`).
   Judging once matters: re-testing a refused candidate every tick until
   noise lets it through would be optional stopping;
4. checks the rollback rule (gate.rollback) on each new block of
   `min_labels` labels the active and previous versions share, so no label
   is judged twice: ROLL_BACK activates the previous version again
   (`model_rolled_back`);
5. judges every version with a role by the trust gate (trust.judge): only
   a PROVEN version's forecasts drive the router's breakers
   (`model_trust_changed` when a verdict flips).

Predict only queues its call (model, backend ids, event times, input,
forecasts); a background worker registers the active version's forecasts,
runs the shadow versions on the same input and feeds one detector per
input feature with the active version's standardised features, spaced per
backend like the labels (`drift_detected kind=feature`, logged once per
feature and active version; the count goes on in the health RPC). Feature
drift does not itself start a retrain: the error detector says whether the
model got worse. When the queue is full, the active version's forecasts are
registered in the Predict call itself and only the shadows miss that call
(counted): registering 1000 forecasts costs about 7 ms, 100 times the
model's own time for 1000 rows, so doing it in every call would make
Predict that much slower.

Everything is decided on event time (the labels' as_of), never on the wall
clock, so a replay at any speed decides the same. No gRPC here: the server
wires Predict, the truth feed and the health RPC to it.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from services.common.drift import Direction, DriftState, PageHinkley, PageHinkleySettings
from services.common.worker import Worker
from services.predictor import gate
from services.predictor.gate import GateDecision, GateSettings, Verdict
from services.predictor.model import LoadedModel
from services.predictor.registry import Registry, Role
from services.predictor.scoring import Counts, Forecast, Label, Scorer, Scores, Spacing
from services.predictor.trust import GATE_OFF, UNSCORED, TrustSettings, TrustVerdict, assess, at_promotion

_log = structlog.get_logger("loop")


@dataclass(frozen=True)
class LoopSettings:
    gate: GateSettings = field(default_factory=GateSettings)
    # On the absolute log error: 0.05 tolerated, lambda 5 (calibrated on
    # synthetic error streams: no false alarm in 10^6 independent values,
    # a shift from 0.24 to 0.48 found after a median of 24 values).
    error_drift: PageHinkleySettings = field(
        default_factory=lambda: PageHinkleySettings(delta=0.05, threshold=5.0, direction=Direction.UP)
    )
    # On each standardised feature (units of the training standard deviation).
    feature_drift: PageHinkleySettings = field(
        default_factory=lambda: PageHinkleySettings(delta=0.1, threshold=20.0, direction=Direction.BOTH)
    )
    # Predict calls waiting for the shadow worker; beyond it one is dropped.
    shadow_queue: int = 64
    # Whether a version's forecasts may drive the breakers (services.predictor.trust).
    trust: TrustSettings = field(default_factory=TrustSettings)
    # Whether Predict scales each version's forecasts to the cut-off fitted on
    # its labels (services.predictor.calibration). On the fleet bench it took
    # the gated make-up model's precision of openings from 0.59 to 0.76.
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.shadow_queue < 1:
            raise ValueError(f"shadow_queue: must be >= 1, got {self.shadow_queue!r}")


@dataclass(frozen=True)
class Batch:
    """One Predict call's input, for the shadow worker."""

    active: LoadedModel  # the version that answered it
    backend_ids: tuple[str, ...]
    as_of: tuple[float, ...]
    x: npt.NDArray[np.float32]  # the checked model input, one row per backend
    predicted: Sequence[float]  # the active version's forecasts, one per row


@dataclass(frozen=True)
class VersionHealth:
    version: str
    role: Role
    horizon_s: float
    scores: Scores
    trust: TrustVerdict = UNSCORED
    scale: float = 1.0  # what Predict multiplies its forecasts by


@dataclass(frozen=True)
class GateRecord:
    decision: GateDecision
    subject_version: str
    reference_version: str
    decided_at: float  # event time: as_of of the newest label then


@dataclass(frozen=True)
class Health:
    window_s: float
    threshold_ms: float
    versions: list[VersionHealth]  # active, candidate, previous
    error_drift: DriftState
    error_drift_threshold: float
    feature_drift: list[tuple[str, DriftState]]
    feature_drift_threshold: float
    last_gate: GateRecord | None
    counts: Counts
    dropped_batches: int
    truth_approximate: bool
    newest_point_at: float  # event time; -inf before the first point


def forecasts_of(
    model: LoadedModel, backend_ids: Sequence[str], as_of: Sequence[float], predicted: Sequence[float]
) -> list[Forecast]:
    """The forecasts of one call; rows without an event time (0: unset on
    the wire) cannot be labelled and are left out."""
    horizon = model.meta.horizon_s
    if horizon <= 0:
        return []
    version = model.version
    return [
        Forecast(version, b, t, horizon, p)
        for b, t, p in zip(backend_ids, as_of, predicted, strict=True)
        if t > 0 and math.isfinite(t)
    ]


class Loop:
    """Thread-safe: record() runs in Predict calls, observe() in the truth
    feed, process_pending() in the worker, tick() in the evaluation timer,
    health() in the health RPC."""

    def __init__(self, registry: Registry, scorer: Scorer, settings: LoopSettings | None = None) -> None:
        self.settings = settings or LoopSettings()
        self._registry = registry
        self._scorer = scorer
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=self.settings.shadow_queue)
        self._lock = threading.Lock()
        # Held while the tick judges, acts on the roles and records the
        # verdict, and while health() reads roles and verdict: a reader must
        # never see a version promoted or rolled back under an older verdict.
        self._verdicts = threading.Lock()
        self._new_labels: list[Label] = []
        self._dropped_batches = 0
        self._error_drift = PageHinkley(self.settings.error_drift)
        self._error_spacing = Spacing()
        self._drift_version: str | None = None  # the version the error detector follows
        self._feature_drift: dict[str, PageHinkley] = {}
        self._feature_version: str | None = None
        self._feature_last: dict[str, float] = {}  # backend -> as_of last fed
        self._feature_logged: set[str] = set()  # features whose drift was logged for this version
        self._gated: set[str] = set()  # candidates judged once already
        self._rollback_since: dict[tuple[str, str], float] = {}
        self._last_gate: GateRecord | None = None
        self._newest_as_of = -math.inf
        self._newest_point_at = -math.inf
        self._labelled_since_tick: set[str] = set()
        # Each scored version's last trust verdict; replaced whole, so a
        # Predict call reads it without a lock.
        self._trust: dict[str, TrustVerdict] = {}
        # Each version's calibration scale, replaced whole like _trust.
        self._scale: dict[str, float] = {}
        # Set by the truth feed when it reads WatchFeatures, not ReadHistory.
        self.truth_approximate = False

    # -- inputs -------------------------------------------------------------

    def record(
        self,
        model: LoadedModel,
        backend_ids: Sequence[str],
        as_of: Sequence[float],
        x: npt.NDArray[np.float32],
        predicted: Sequence[float],
    ) -> None:
        """The forecasts one Predict call answered with `model`, queued for
        the worker. When the queue is full the active version's forecasts
        are registered here, never dropped, and the call is dropped for the
        shadows (counted) rather than making Predict wait for them."""
        if len(as_of) != len(backend_ids):
            return  # a matrix without event times: served, not scored
        batch = Batch(model, tuple(backend_ids), tuple(as_of), x, predicted)
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._register(batch)
            with self._lock:
                self._dropped_batches += 1

    def _register(self, batch: Batch) -> None:
        self._add(
            self._scorer.add_forecasts(forecasts_of(batch.active, batch.backend_ids, batch.as_of, batch.predicted))
        )

    def observe(self, points: Iterable[tuple[str, float, float]]) -> None:
        """Telemetry points (backend_id, observed_at, latency_ms): the truth."""
        points = list(points)
        self._add(self._scorer.observe(points))
        newest = max((t for _, t, _ in points), default=-math.inf)
        with self._lock:
            self._newest_point_at = max(self._newest_point_at, newest)

    def _add(self, labels: list[Label]) -> None:
        if labels:
            with self._lock:
                self._new_labels.extend(labels)

    # -- the worker ----------------------------------------------------------

    def process_pending(self, block_s: float = 0.0) -> int:
        """Runs the shadows and the feature detectors on queued calls;
        waits up to block_s for the first. Returns how many it processed."""
        done = 0
        while True:
            try:
                batch = self._queue.get(timeout=block_s) if block_s > 0 and not done else self._queue.get_nowait()
            except queue.Empty:
                return done
            self._register(batch)
            self._run_shadows(batch)
            self._feed_features(batch)
            done += 1

    def _run_shadows(self, batch: Batch) -> None:
        active = batch.active.meta
        for _, model in self._registry.shadows.models():
            meta = model.meta
            if meta.schema_version != active.schema_version or meta.feature_names != active.feature_names:
                continue  # cannot read this input; it is scored on nothing
            predicted = model.predict(batch.x).tolist()
            self._add(self._scorer.add_forecasts(forecasts_of(model, batch.backend_ids, batch.as_of, predicted)))

    def _feed_features(self, batch: Batch) -> None:
        meta = batch.active.meta
        if not meta.feature_means or not meta.feature_stds or meta.horizon_s <= 0:
            return
        means = np.asarray(meta.feature_means, dtype=np.float64)
        stds = np.asarray(meta.feature_stds, dtype=np.float64)
        usable = stds > 0
        with self._lock:
            if self._feature_version != meta.version:
                self._feature_version = meta.version
                self._feature_last.clear()
                self._feature_logged.clear()
                for name in meta.feature_names:
                    # A new active version has other means: a new baseline,
                    # the count of fires kept.
                    self._feature_drift.setdefault(name, PageHinkley(self.settings.feature_drift)).reset()
            for row, (backend, t) in enumerate(zip(batch.backend_ids, batch.as_of, strict=True)):
                last = self._feature_last.get(backend)
                if t <= 0 or (last is not None and t < last + meta.horizon_s):
                    continue  # spaced as the labels are: overlapping windows move together
                self._feature_last[backend] = t
                z = (batch.x[row].astype(np.float64) - means) / np.where(usable, stds, 1.0)
                for name, value, ok in zip(meta.feature_names, z.tolist(), usable.tolist(), strict=True):
                    detector = self._feature_drift[name]
                    fired = ok and math.isfinite(value) and detector.update(value, at=t)
                    if fired and name not in self._feature_logged:
                        self._feature_logged.add(name)
                        state = detector.state()
                        _log.warning(
                            "drift_detected",
                            kind="feature",
                            feature=name,
                            version=meta.version,
                            backend_id=backend,
                            event_time=t,
                            fires=state.fires,
                        )

    # -- the evaluation tick -------------------------------------------------

    def tick(self) -> None:
        with self._lock:
            labels, self._new_labels = self._new_labels, []
        labels.sort(key=lambda x: (x.as_of, x.backend_id))
        active = self._registry.active
        if active is None:
            return
        with self._lock:
            for label in labels:
                self._newest_as_of = max(self._newest_as_of, label.as_of)
                self._labelled_since_tick.add(label.model_version)
            self._feed_error(active.version, labels)
        self._log_evaluations(active)
        with self._verdicts:
            self._judge_candidate(active)
            self._check_rollback()
            self._judge_trust(self._registry.active or active)

    def _feed_error(self, active: str, labels: list[Label]) -> None:
        if self._drift_version != active:
            # Another version answers now: its error is a new baseline.
            self._drift_version = active
            self._error_drift.reset()
            self._error_spacing = Spacing()
        for label in labels:
            if label.model_version != active or not self._error_spacing.admit(label):
                continue
            if self._error_drift.update(label.abs_log_error, at=label.as_of):
                state = self._error_drift.state()
                _log.warning(
                    "drift_detected",
                    kind="error",
                    version=active,
                    event_time=label.as_of,
                    fires=state.fires,
                    threshold=self.settings.error_drift.threshold,
                )

    def _roles(self, active: LoadedModel) -> list[tuple[Role, LoadedModel]]:
        return [(Role.ACTIVE, active), *self._registry.shadows.models()]

    def _log_evaluations(self, active: LoadedModel) -> None:
        with self._lock:
            touched, self._labelled_since_tick = self._labelled_since_tick, set()
        for role, model in self._roles(active):
            if model.version not in touched:
                continue
            s = self._scorer.scores(model.version)
            _log.info(
                "model_evaluated",
                version=model.version,
                role=role.value,
                labels=s.labels,
                mae_ms=round(s.mae_ms, 2),
                log_mae=round(s.log_mae, 4),
                breach_precision=s.breach_precision,
                breach_recall=s.breach_recall,
            )

    def _judge_candidate(self, active: LoadedModel) -> None:
        candidate = self._registry.shadows.candidate
        if candidate is None or candidate.version in self._gated:
            return
        paired = self._scorer.paired(candidate.version, active.version)
        decision = gate.promotion(paired, self.settings.gate)
        if decision.verdict is not Verdict.WAIT:
            self._gated.add(candidate.version)
        if decision.verdict is Verdict.PROMOTE:
            inherited = at_promotion(self.trust(candidate.version), self.trust(active.version), active.version)
            self._trust = {**self._trust, candidate.version: inherited}
            # The registry logs model_promoted with the reason. The rollback
            # rule then judges the new pair only on labels after the ones
            # that promoted it: judging those again would merely repeat the
            # gate (and its KEEP would hide the PROMOTE from health).
            self._registry.promote(candidate.version, decision.reason)
            self._rollback_since[(candidate.version, active.version)] = paired.newest_as_of
        elif decision.verdict is Verdict.REFUSE:
            _log.warning("candidate_refused", version=candidate.version, active=active.version, reason=decision.reason)
        self._record(decision, candidate.version, active.version)

    def _check_rollback(self) -> None:
        active, previous = self._registry.active, self._registry.shadows.previous
        if active is None or previous is None:
            return
        pair = (active.version, previous.version)
        paired = self._scorer.paired(*pair, since=self._rollback_since.get(pair, -math.inf))
        decision = gate.rollback(paired, self.settings.gate)
        if decision.verdict is Verdict.WAIT:
            return
        # The next check judges only labels newer than these.
        self._rollback_since[pair] = paired.newest_as_of
        if decision.verdict is Verdict.ROLL_BACK:
            self._registry.restore_previous(active.version, decision.reason)
        else:
            _log.info("rollback_checked", version=active.version, previous=previous.version, reason=decision.reason)
        self._record(decision, *pair)

    def _judge_trust(self, active: LoadedModel) -> None:
        verdicts: dict[str, TrustVerdict] = {}
        scales: dict[str, float] = {}
        for _, model in self._roles(active):
            version = model.version
            before = self._trust.get(version, UNSCORED)
            after, scales[version] = assess(
                self._scorer.labels(version),
                self._scorer.threshold_ms,
                before,
                self._scale.get(version, 1.0),
                self.settings.trust,
                self.settings.calibrate,
            )
            if after.trust is not before.trust:
                _log.info("model_trust_changed", version=version, trust=after.trust.value, reason=after.reason)
            verdicts[version] = after
        self._scale = scales
        self._trust = verdicts

    def scale(self, version: str) -> float:
        """What Predict multiplies `version`'s forecasts by, as of the last tick."""
        return self._scale.get(version, 1.0)

    def trust(self, version: str) -> TrustVerdict:
        """Whether `version` may drive the breakers, as of the last tick."""
        if not self.settings.trust.enabled:
            return GATE_OFF
        return self._trust.get(version, UNSCORED)

    def _record(self, decision: GateDecision, subject: str, reference: str) -> None:
        with self._lock:
            self._last_gate = GateRecord(decision, subject, reference, self._newest_as_of)

    # -- reading -------------------------------------------------------------

    def health(self) -> Health:
        with self._verdicts:
            return self._health()

    def _health(self) -> Health:
        active = self._registry.active
        versions = [
            VersionHealth(
                model.version,
                role,
                model.meta.horizon_s,
                self._scorer.scores(model.version),
                self.trust(model.version),
                self.scale(model.version),
            )
            for role, model in (self._roles(active) if active is not None else [])
        ]
        with self._lock:
            return Health(
                window_s=self._scorer.limits.window_s,
                threshold_ms=self._scorer.threshold_ms,
                versions=versions,
                error_drift=self._error_drift.state(),
                error_drift_threshold=self.settings.error_drift.threshold,
                feature_drift=[(name, d.state()) for name, d in self._feature_drift.items()],
                feature_drift_threshold=self.settings.feature_drift.threshold,
                last_gate=self._last_gate,
                counts=self._scorer.counts(),
                dropped_batches=self._dropped_batches,
                truth_approximate=self.truth_approximate,
                newest_point_at=self._newest_point_at,
            )


class LoopThreads:
    """Runs a Loop's worker and evaluation tick in two daemon threads, the
    tick every interval_s of wall clock (what it decides depends only on
    event time)."""

    def __init__(self, loop: Loop, interval_s: float) -> None:
        self._loop = loop
        self._interval_s = interval_s
        self._worker = Worker("loop-worker", self._work)
        self._ticker = Worker("loop-tick", self._tick)
        self.workers = (self._worker, self._ticker)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def _work(self) -> None:
        while not self._worker.stopping.is_set():
            self._guarded(lambda: self._loop.process_pending(block_s=0.2))

    def _tick(self) -> None:
        while not self._ticker.stopping.wait(self._interval_s):
            self._guarded(self._loop.tick)

    @staticmethod
    def _guarded(step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - logged; the loop goes on
            # One bad batch or tick must not end the loop for good.
            _log.exception("loop_step_failed")
