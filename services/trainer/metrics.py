"""The trainer's Prometheus metrics: trainings by how they ended and how long
they took (counted as they end), the held-out figures of the last one (read
from the trainer at scrape time), and whether the active version learnt the
fleet (read from the retrain watcher)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.trainer.job import OUTCOMES, Trainer
from services.trainer.train import HistorySource
from services.trainer.watcher import WatcherStatus

# A training takes seconds (synthetic history) to minutes (a week of history).
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class TrainingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        trainings = Counter(
            "ace_trainer_trainings",
            "Trainings by how they ended: trained (publishing not asked for), published, publish_failed, failed "
            "(bad input or an error on the way), cancelled (the caller went away) or short_history (an "
            "auto-training found less fleet history than it needs).",
            ["outcome"],
            registry=registry,
        )
        self._trainings = {outcome: trainings.labels(outcome) for outcome in OUTCOMES}
        self._duration = Histogram(
            "ace_trainer_training_duration_seconds",
            "Wall-clock seconds a training took, from loading history to publishing, whatever its outcome.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def finished(self, outcome: str, seconds: float) -> None:
        self._trainings[outcome].inc()
        self._duration.observe(seconds)


class LastTrainingCollector(Collector):
    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    def collect(self) -> Iterator[Metric]:
        status = self._trainer.status()
        yield GaugeMetricFamily("ace_trainer_training_in_progress", "1 while a training runs.", int(status.training))
        last = status.last_result
        m = last.model.metrics if last is not None else None
        held_out = "on the held-out rows of the last training that produced a model"
        # (name, help, value or None before the first training): declared
        # even then, so a scraper and the metric-name check always see them.
        figures = (
            (
                "ace_trainer_last_success_timestamp_seconds",
                "When the last training that produced a model finished.",
                status.last_finished_at,
            ),
            (
                "ace_trainer_last_mae_seconds",
                f"Mean absolute error of the horizon's worst latency {held_out}.",
                m.mae_ms / 1000 if m else None,
            ),
            (
                "ace_trainer_last_persistence_mae_seconds",
                f"The same error of the persistence forecast (worst ahead = now), the baseline, {held_out}.",
                m.persistence_mae_ms / 1000 if m else None,
            ),
            ("ace_trainer_last_r2", f"R squared {held_out}.", m.r2 if m else None),
            (
                "ace_trainer_last_breach_precision",
                f"Breach precision at the threshold {held_out}.",
                m.breach_precision if m else None,
            ),
            (
                "ace_trainer_last_breach_recall",
                f"Breach recall at the threshold {held_out}.",
                m.breach_recall if m else None,
            ),
            ("ace_trainer_last_test_rows", f"Held-out rows {held_out}.", m.test_rows if m else None),
            (
                "ace_trainer_last_train_rows",
                "Training rows of the last training that produced a model.",
                m.train_rows if m else None,
            ),
        )
        for name, doc, value in figures:
            family = GaugeMetricFamily(name, doc, labels=[])
            if value is not None:
                family.add_metric([], value)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


class RetrainCollector(Collector):
    """What the trainer's own retraining sees: whether the predictor's active
    version learnt this fleet. A synthetic version still active hours after a
    deploy means auto-training is off or stuck (GetStatus says on what)."""

    def __init__(self, status: Callable[[], WatcherStatus] | None) -> None:
        self._status = status  # None: no watcher runs (neither --auto-train nor --retrain-on-drift)

    def collect(self) -> Iterator[Metric]:
        status = self._status() if self._status is not None else None
        family = GaugeMetricFamily(
            "ace_trainer_active_learnt_fleet",
            "1 when the predictor's active version was trained on this fleet's own history, 0 when not (synthetic, "
            "a CSV file or unsaid); no sample before the trainer's first poll of the predictor, or when it does not "
            "poll (neither --auto-train nor --retrain-on-drift).",
            labels=[],
        )
        # Declared without a sample until known, so the metric-name check
        # and a scraper always see it.
        if status is not None and status.polled:
            family.add_metric([], int(status.active_source is HistorySource.FLEET))
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())
