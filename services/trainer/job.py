"""A training from request values to a result: the checks and defaults of a
request, where its history comes from, and the one-at-a-time run that
reports each stage as it finishes. Plain values only; publishing enters as a
function so that this module needs no gRPC.

ShortHistory, a FailedPrecondition, says how much event time a feature-store
history covers when a training asked for more (FeatureStoreSource.min_span_s),
so that the trainer's own retraining knows when to look again."""

from __future__ import annotations

import dataclasses
import enum
import math
import stat
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.common import synthetic
from services.common.errors import AceError, FailedPrecondition, InvalidInput
from services.common.telemetry import Point, read_csv
from services.common.timeutil import iso
from services.common.window import WindowLimits
from services.trainer import dataset, train
from services.trainer.train import HistorySource, Provenance, TrainedModel, TrainParams

_log = structlog.get_logger("trainer")


class Stage(enum.Enum):
    """The steps a training reports, in order (ace.v1.TrainStage says what
    each means)."""

    HISTORY = enum.auto()
    FEATURES = enum.auto()
    FIT = enum.auto()
    EXPORT = enum.auto()
    VERIFY = enum.auto()
    PUBLISH = enum.auto()
    DONE = enum.auto()


DEFAULT_BACKENDS = 6
DEFAULT_DURATION_S = 6 * 3600.0
DEFAULT_INTERVAL_S = 10.0
MAX_BACKENDS = 200
# Bounds the memory and time one synthetic request can ask for (a default
# history has 12,960 points).
MAX_SYNTHETIC_POINTS = 2_000_000


@dataclass(frozen=True)
class SyntheticSource:
    seed: int
    backends: int = DEFAULT_BACKENDS
    duration_s: float = DEFAULT_DURATION_S  # of event time
    interval_s: float = DEFAULT_INTERVAL_S


@dataclass(frozen=True)
class CsvSource:
    path: str  # under the trainer's --data-dir: relative to it, or absolute


@dataclass(frozen=True)
class FeatureStoreSource:
    """The history the feature store recorded, read through its ReadHistory."""

    duration_s: float = 0.0  # the newest seconds of event time; 0: all it holds
    # Refuse (ShortHistory) a history whose points cover less event time.
    min_span_s: float = 0.0


class ShortHistory(FailedPrecondition):
    def __init__(self, covered_s: float, needed_s: float) -> None:
        super().__init__(
            f"feature_store: the history covers {covered_s:.0f} s of event time; this training needs {needed_s:.0f} s"
        )
        self.covered_s = covered_s
        self.needed_s = needed_s


class Trigger(enum.Enum):
    """What started a training (ace.v1.TrainTrigger says when each applies)."""

    OPERATOR = enum.auto()
    FLEET_FIRST = enum.auto()
    FLEET_REFRESH = enum.auto()
    DRIFT = enum.auto()


Source = SyntheticSource | CsvSource | FeatureStoreSource


@dataclass(frozen=True)
class Defaults:
    """What a request's zero values stand for (the trainer's flags)."""

    horizon_s: float
    threshold_ms: float


@dataclass(frozen=True)
class Job:
    source: Source
    params: TrainParams
    publish: bool


@dataclass(frozen=True)
class ReplicaOutcome:
    address: str
    published: bool
    error: str = ""


@dataclass(frozen=True)
class PublishOutcome:
    published: bool  # by every replica
    error: str = ""  # why not, when publishing was asked for and failed
    replicas: tuple[ReplicaOutcome, ...] = ()

    @classmethod
    def of(cls, replicas: tuple[ReplicaOutcome, ...]) -> PublishOutcome:
        failed = [r for r in replicas if not r.published]
        if not replicas:
            return cls(False, "no predictor replica to publish to", replicas)
        return cls(not failed, "; ".join(f"{r.address}: {r.error}" for r in failed), replicas)


@dataclass(frozen=True)
class Result:
    model: TrainedModel
    published: bool
    publish_error: str
    train_s: float  # wall time from reading the history to a verified model
    replicas: tuple[ReplicaOutcome, ...] = ()
    trigger: Trigger = Trigger.OPERATOR


@dataclass(frozen=True)
class Progress:
    stage: Stage
    message: str
    result: Result | None = None  # on the "done" step only


@dataclass(frozen=True)
class Status:
    training: bool
    last_result: Result | None
    last_finished_at: float | None  # wall clock, seconds since the epoch


Publisher = Callable[[TrainedModel], PublishOutcome]
HistoryLoader = Callable[[Source], list[Point]]
# The quality labels of a source's span (FeatureStore outcome summaries).
QualityLoader = Callable[[Source], list[dataset.QualityBucket]]


def make_job(
    source: Source | None,
    *,
    publish: bool,
    n_estimators: int,
    max_depth: int,
    horizon_s: float,
    threshold_ms: float,
    seed: int,
    defaults: Defaults,
) -> Job:
    """Checks a request's values and fills in its defaults (0 means the
    default everywhere). InvalidInput names the offending field."""
    if source is None:
        raise InvalidInput("source: set synthetic, csv_path or feature_store")
    if n_estimators > train.MAX_N_ESTIMATORS:
        raise InvalidInput(f"n_estimators: must be at most {train.MAX_N_ESTIMATORS}, got {n_estimators}")
    if max_depth > train.MAX_DEPTH:
        raise InvalidInput(f"max_depth: must be at most {train.MAX_DEPTH}, got {max_depth}")
    return Job(
        source=_resolve_source(source),
        params=TrainParams(
            horizon_s=_positive_or_default("horizon_s", horizon_s, defaults.horizon_s),
            threshold_ms=_positive_or_default("threshold_ms", threshold_ms, defaults.threshold_ms),
            n_estimators=n_estimators or train.DEFAULT_N_ESTIMATORS,
            max_depth=max_depth or train.DEFAULT_MAX_DEPTH,
            seed=seed or train.DEFAULT_SEED,
        ),
        publish=publish,
    )


def _positive_or_default(field: str, value: float, default: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise InvalidInput(f"{field}: must be a finite number >= 0 (0 means the default), got {value!r}")
    return value or default


def _resolve_source(source: Source) -> Source:
    if isinstance(source, CsvSource):
        if not source.path:
            raise InvalidInput("csv_path: must not be empty")
        return source
    if isinstance(source, FeatureStoreSource):
        _positive_or_default("feature_store.duration_s", source.duration_s, 0.0)
        return source
    if source.backends > MAX_BACKENDS:
        raise InvalidInput(f"synthetic.backends: must be at most {MAX_BACKENDS}, got {source.backends}")
    resolved = SyntheticSource(
        seed=source.seed,
        backends=source.backends or DEFAULT_BACKENDS,
        duration_s=_positive_or_default("synthetic.duration_s", source.duration_s, DEFAULT_DURATION_S),
        interval_s=_positive_or_default("synthetic.interval_s", source.interval_s, DEFAULT_INTERVAL_S),
    )
    points = resolved.backends * (resolved.duration_s // resolved.interval_s)
    if points > MAX_SYNTHETIC_POINTS:
        raise InvalidInput(
            f"synthetic.duration_s: {resolved.backends} backends every {resolved.interval_s:g} s for "
            f"{resolved.duration_s:g} s are {points:.0f} points, more than {MAX_SYNTHETIC_POINTS}"
        )
    return resolved


def csv_file(data_dir: Path | None, requested: str) -> Path:
    """The file a csv_path names, confined to data_dir: symlinks and `..`
    are resolved first, so neither leads out of it. Train is an admin call,
    but its token should not also be a read of every file the trainer can
    open, and the CSV reader's errors quote the lines they refuse.
    FailedPrecondition without a data_dir; InvalidInput for a path that
    resolves outside it (or to no regular file), checked before anything is
    opened, so the answer tells nothing of what lies outside."""
    if data_dir is None:
        raise FailedPrecondition("csv_path: this trainer reads no CSV files; start it with --data-dir (ACE_DATA_DIR)")
    try:
        root = data_dir.resolve(strict=True)
        path = (root / requested).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: a symlink loop; ValueError: a NUL byte
        # Without the exception's text, which can name a path outside.
        raise InvalidInput(f"csv_path: cannot resolve {requested!r}") from exc
    if not path.is_relative_to(root):
        raise InvalidInput(f"csv_path: {requested!r} is outside the trainer's --data-dir")
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # missing, or a name too long
        raise InvalidInput(f"csv_path: cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):  # a FIFO would block the training, a device is no history
        raise InvalidInput(f"csv_path: {requested!r} is not a regular file")
    return path


def load_history(source: Source, data_dir: Path | None = None) -> list[Point]:
    """The points of a source. A CSV file is read only under data_dir (see
    csv_file); InvalidInput naming csv_path (and the line) for one that
    cannot be read or parsed. The feature store's history needs a client,
    which the server adds (services.trainer.history)."""
    if isinstance(source, FeatureStoreSource):
        raise FailedPrecondition("feature_store: this trainer has no feature store client")
    if isinstance(source, SyntheticSource):
        return synthetic.random_history(source.seed, source.backends, source.duration_s, source.interval_s).points
    path = csv_file(data_dir, source.path)
    points: list[Point] = []
    try:
        points.extend(read_csv(path))
    except OSError as exc:
        raise InvalidInput(f"csv_path: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # read_csv names the line
        raise InvalidInput(f"csv_path: {exc}") from exc
    return points


# How a training can end: trained (publishing not asked for), published,
# publish_failed (trained, refused or unreachable predictor), failed (bad
# input or an error on the way), cancelled (the caller went away) or
# short_history (a feature-store history shorter than min_span_s: an
# auto-training's look before there is enough, which is no failure).
OUTCOMES = ("trained", "published", "publish_failed", "failed", "cancelled", "short_history")


class Trainer:
    """Runs one training at a time and remembers the last result."""

    def __init__(
        self,
        *,
        limits: WindowLimits,
        publisher: Publisher,
        load: HistoryLoader = load_history,
        now: Callable[[], float] = time.time,
        quality: QualityLoader | None = None,
        quality_weight: float = 0.0,
        on_finished: Callable[[str, float], None] = lambda outcome, seconds: None,
    ) -> None:
        self._limits = limits
        # Told how each training ended (one of OUTCOMES) and its seconds.
        self._on_finished = on_finished
        self._publisher = publisher
        self._load = load
        self._now = now
        # With a weight > 0, rows whose horizon saw quality fall count more
        # (dataset.with_quality).
        self._quality = quality
        self._quality_weight = quality_weight
        self._running = threading.Lock()
        self._guard = threading.Lock()  # over the two fields below
        self._last_result: Result | None = None
        self._last_finished_at: float | None = None

    def status(self) -> Status:
        with self._guard:
            return Status(self._running.locked(), self._last_result, self._last_finished_at)

    def run(
        self, job: Job, publisher: Publisher | None = None, trigger: Trigger = Trigger.OPERATOR
    ) -> Generator[Progress, None, None]:
        """The steps of one training, each yielded once finished; `publisher`
        replaces the trainer's own for this job (a retrain the trainer starts
        itself publishes as a shadow).
        FailedPrecondition when another training runs. The trainer is free
        again before the last step, "done", is yielded, so a client that has
        read it can start the next training at once."""
        if not self._running.acquire(blocking=False):
            raise FailedPrecondition("a training is already running; the trainer runs one at a time")
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = yield from self._steps(job, publisher or self._publisher, trigger)
            outcome = "published" if result.published else "publish_failed" if job.publish else "trained"
        except ShortHistory as exc:
            outcome = "short_history"
            _log.info("training_deferred", reason=str(exc))
            raise
        except AceError as exc:
            _log.warning("training_failed", reason=str(exc))
            raise
        except GeneratorExit:  # the client went away; gRPC closes the stream
            outcome = "cancelled"
            _log.warning("training_cancelled")
            raise
        finally:
            self._running.release()
            self._on_finished(outcome, time.perf_counter() - started)
        yield Progress(Stage.DONE, f"version {result.model.version}", result)

    def _steps(self, job: Job, publisher: Publisher, trigger: Trigger) -> Generator[Progress, None, Result]:
        params = job.params
        _log.info(
            "training_started",
            trigger=trigger.name.lower(),
            source=describe(job.source),
            publish=job.publish,
            n_estimators=params.n_estimators,
            max_depth=params.max_depth,
            horizon_s=params.horizon_s,
            threshold_ms=params.threshold_ms,
            seed=params.seed,
        )
        started = time.perf_counter()
        points = self._load(job.source)
        backends = len({p.backend_id for p in points})
        history = provenance_of(job.source, points)
        if isinstance(job.source, FeatureStoreSource) and history.end_at - history.start_at < job.source.min_span_s:
            raise ShortHistory(history.end_at - history.start_at, job.source.min_span_s)
        yield Progress(Stage.HISTORY, f"{len(points)} points of {backends} backends from {describe(job.source)}")

        data = dataset.build(points, params.horizon_s, self._limits)
        weighted = ""
        if self._quality is not None and self._quality_weight > 0:
            data = dataset.with_quality(data, self._quality(job.source), self._quality_weight)
            weighted = f"; {dataset.weighted_rows(data)} rows weighted up by quality labels"
        yield Progress(
            Stage.FEATURES,
            f"{len(data)} labelled rows; {data.unlabelled} points without a full {params.horizon_s:g} s horizon"
            + weighted,
        )

        fitted = train.fit(data, params)
        yield Progress(
            Stage.FIT,
            f"{params.n_estimators} trees of depth <= {params.max_depth} on {len(fitted.split.train)} rows in "
            f"{fitted.fit_s:.1f} s; {len(fitted.split.test)} held-out rows from {iso(fitted.split.cut)}",
        )

        onnx_bytes = train.export(fitted)
        yield Progress(Stage.EXPORT, f"ONNX model of {len(onnx_bytes)} bytes")

        model = dataclasses.replace(train.verify(data, fitted, onnx_bytes, params, self._now()), provenance=history)
        train_s = time.perf_counter() - started
        m = model.metrics
        _log.info("training_finished", version=model.version, train_s=round(train_s, 3), **m.as_map())
        yield Progress(
            Stage.VERIFY,
            f"max |onnx - sklearn| {m.onnx_max_abs_diff_ms:.2g} ms; held-out MAE {m.mae_ms:.1f} ms "
            f"(persistence {m.persistence_mae_ms:.1f} ms), R2 {m.r2:.3f}",
        )

        if job.publish:
            outcome = publisher(model)
            accepted = sum(r.published for r in outcome.replicas)
            if outcome.published:
                _log.info("model_published", version=model.version, size_bytes=model.size_bytes, replicas=accepted)
                message = f"published {model.version} to the predictor"
                if len(outcome.replicas) > 1:
                    message += f" ({accepted} replicas)"
            else:
                _log.warning("publish_failed", version=model.version, error=outcome.error, replicas_accepted=accepted)
                message = f"not published: {outcome.error}"
        else:
            outcome = PublishOutcome(published=False)
            message = "not requested"
        yield Progress(Stage.PUBLISH, message)

        result = Result(
            model=model,
            published=outcome.published,
            publish_error=outcome.error,
            train_s=train_s,
            replicas=outcome.replicas,
            trigger=trigger,
        )
        with self._guard:
            self._last_result = result
            self._last_finished_at = self._now()
        return result


def provenance_of(source: Source, points: list[Point]) -> Provenance:
    """The source's kind and the event time its points span (0 to 0 for
    none)."""
    kind = (
        HistorySource.FLEET
        if isinstance(source, FeatureStoreSource)
        else HistorySource.CSV
        if isinstance(source, CsvSource)
        else HistorySource.SYNTHETIC
    )
    if not points:
        return Provenance(kind, 0.0, 0.0)
    times = [p.observed_at for p in points]
    return Provenance(kind, min(times), max(times))


def describe(source: Source) -> str:
    if isinstance(source, CsvSource):
        return f"csv {source.path}"
    if isinstance(source, FeatureStoreSource):
        span = f"the last {source.duration_s:g} s" if source.duration_s else "all"
        return f"feature store history ({span})"
    return (
        f"synthetic seed {source.seed}, {source.backends} backends, {source.duration_s:g} s every "
        f"{source.interval_s:g} s"
    )
