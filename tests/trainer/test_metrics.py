"""The trainer's metrics: how each training ended, the last held-out figures,
and whether the active version learnt the fleet."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import InvalidInput
from services.common.telemetry import Point
from services.common.window import WindowLimits
from services.trainer.job import PublishOutcome, Source, SyntheticSource, Trainer, load_history
from services.trainer.metrics import LastTrainingCollector, RetrainCollector, TrainingMetrics
from services.trainer.train import HistorySource
from services.trainer.watcher import WatcherStatus
from tests import scrape
from tests.trainer.test_job import SMALL, _make

BROKEN = SyntheticSource(seed=99, backends=2, duration_s=3600.0, interval_s=10.0)


def test_trainings_are_counted_by_outcome_and_the_last_figures_exported():
    registry = CollectorRegistry()
    metrics = TrainingMetrics(registry)
    outcomes = iter([PublishOutcome(published=False, error="UNAVAILABLE"), PublishOutcome(published=True)])

    def load(source: Source) -> list[Point]:
        if isinstance(source, SyntheticSource) and source.seed == BROKEN.seed:
            raise InvalidInput("csv_path: no such file")
        return load_history(source)

    trainer = Trainer(
        limits=WindowLimits(),
        publisher=lambda model: next(outcomes),
        load=load,
        now=lambda: 1_790_000_000.0,
        on_finished=metrics.finished,
    )
    registry.register(LastTrainingCollector(trainer))
    assert scrape.value(scrape.collected(registry), "ace_trainer_last_mae_seconds") is None  # declared, no value yet
    list(trainer.run(_make(SMALL, n_estimators=5)))
    list(trainer.run(_make(SMALL, publish=True, n_estimators=5)))
    list(trainer.run(_make(SMALL, publish=True, n_estimators=5)))
    with pytest.raises(InvalidInput):
        list(trainer.run(_make(BROKEN, n_estimators=5)))
    found = scrape.collected(registry)
    for outcome, n in (("trained", 1), ("publish_failed", 1), ("published", 1), ("failed", 1), ("cancelled", 0)):
        assert scrape.value(found, "ace_trainer_trainings_total", outcome=outcome) == n, outcome
    assert scrape.value(found, "ace_trainer_training_duration_seconds_count") == 4
    last = trainer.status().last_result
    assert last is not None
    assert scrape.value(found, "ace_trainer_last_mae_seconds") == pytest.approx(last.model.metrics.mae_ms / 1000)
    assert scrape.value(found, "ace_trainer_last_success_timestamp_seconds") == 1_790_000_000.0
    assert scrape.value(found, "ace_trainer_training_in_progress") == 0


def test_whether_the_active_version_learnt_the_fleet_is_a_gauge_once_polled():
    status = WatcherStatus(
        auto=True, on_drift=False, waiting_for="", next_due_at=None, started=0, active_source=None, polled=False
    )
    registry = CollectorRegistry()
    registry.register(RetrainCollector(lambda: status))
    assert scrape.value(scrape.collected(registry), "ace_trainer_active_learnt_fleet") is None
    (declared,) = RetrainCollector(None).collect()  # no watcher: declared, never a sample
    assert (declared.name, declared.samples) == ("ace_trainer_active_learnt_fleet", [])
    for source, learnt in ((HistorySource.SYNTHETIC, 0), (None, 0), (HistorySource.FLEET, 1)):
        status = dataclasses.replace(status, active_source=source, polled=True)
        assert scrape.value(scrape.collected(registry), "ace_trainer_active_learnt_fleet") == learnt, source
