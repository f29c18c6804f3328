from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest

from services.common import synthetic
from services.common.errors import FailedPrecondition, InvalidInput
from services.common.telemetry import Point, write_csv
from services.common.window import WindowLimits
from services.trainer import job
from services.trainer.job import CsvSource, Defaults, Job, PublishOutcome, SyntheticSource, Trainer
from services.trainer.train import HistorySource, Provenance, TrainedModel, TrainParams

DEFAULTS = Defaults(horizon_s=300.0, threshold_ms=250.0)


DEFAULT_SOURCE = SyntheticSource(seed=1, backends=0, duration_s=0.0, interval_s=0.0)


def _make(source=DEFAULT_SOURCE, **overrides):
    values: dict[str, Any] = {
        "publish": False,
        "n_estimators": 0,
        "max_depth": 0,
        "horizon_s": 0.0,
        "threshold_ms": 0.0,
        "seed": 0,
    }
    values.update(overrides)
    return job.make_job(source, defaults=DEFAULTS, **values)


def test_zero_values_mean_the_defaults():
    made = _make()
    assert made.params == TrainParams(horizon_s=300.0, threshold_ms=250.0, n_estimators=60, max_depth=10, seed=7)
    assert made.source == SyntheticSource(seed=1, backends=6, duration_s=21600.0, interval_s=10.0)


def test_given_values_are_kept():
    made = _make(
        SyntheticSource(seed=0, backends=2, duration_s=600.0, interval_s=5.0),
        publish=True,
        n_estimators=9,
        max_depth=16,
        horizon_s=60.0,
        threshold_ms=500.0,
        seed=3,
    )
    assert made == Job(
        source=SyntheticSource(seed=0, backends=2, duration_s=600.0, interval_s=5.0),
        params=TrainParams(horizon_s=60.0, threshold_ms=500.0, n_estimators=9, max_depth=16, seed=3),
        publish=True,
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_depth": 17}, "max_depth"),
        ({"n_estimators": 201}, "n_estimators"),
        ({"horizon_s": -1.0}, "horizon_s"),
        ({"horizon_s": math.nan}, "horizon_s"),
        ({"threshold_ms": -5.0}, "threshold_ms"),
        ({"threshold_ms": math.inf}, "threshold_ms"),
        ({"source": None}, "source"),
        ({"source": CsvSource("")}, "csv_path"),
        ({"source": SyntheticSource(seed=1, backends=201)}, "synthetic.backends"),
        ({"source": SyntheticSource(seed=1, duration_s=-1.0)}, "synthetic.duration_s"),
        ({"source": SyntheticSource(seed=1, interval_s=-1.0)}, "synthetic.interval_s"),
        ({"source": SyntheticSource(seed=1, backends=200, interval_s=1.0)}, "synthetic.duration_s"),
    ],
)
def test_out_of_range_values_name_their_field(overrides, field):
    source = overrides.pop("source", SyntheticSource(seed=1))
    with pytest.raises(InvalidInput, match=rf"^{field}: "):
        _make(source, **overrides)


def test_csv_history_is_read(tmp_path):
    points = [Point("a", 1000.0 + i, 1.0, 50.0, 0.0) for i in range(5)]
    write_csv(tmp_path / "h.csv", points)
    assert job.load_history(CsvSource(str(tmp_path / "h.csv")), tmp_path) == points
    assert job.load_history(CsvSource("h.csv"), tmp_path) == points  # relative to the data dir


def test_a_missing_csv_names_csv_path_and_the_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(InvalidInput, match=rf"^csv_path: cannot read {re.escape(str(missing))}: No such file"):
        job.load_history(CsvSource(str(missing)), tmp_path)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("a,1000,1,50,0\na,1010,1,fast,0\n", 3),  # not a number
        ("a,1000,1,50,0\na,1010,1,50,2\n", 3),  # error_rate out of range
        ("a,1000,1,50,0\nb,1010,1\n", 3),  # too few columns
    ],
)
def test_a_malformed_csv_row_names_csv_path_and_the_line(tmp_path, body, line):
    path = tmp_path / "bad.csv"
    path.write_text("backend_id,observed_at,load,latency_ms,error_rate\n" + body)
    with pytest.raises(InvalidInput, match=rf"^csv_path: {re.escape(str(path))}:{line}: "):
        job.load_history(CsvSource(str(path)), tmp_path)


def test_a_csv_without_the_columns_names_csv_path(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("backend_id,when\na,1\n")
    with pytest.raises(InvalidInput, match=r"^csv_path: .*missing columns"):
        job.load_history(CsvSource(str(path)), tmp_path)


# A file outside the data dir whose first data line the CSV reader would
# quote in its refusal if it ever opened it.
SECRET = "backend_id,observed_at,load,latency_ms,error_rate\nroot,1,1,secret-line,0\n"


@pytest.fixture
def data_dir(tmp_path):
    inside = tmp_path / "data"
    inside.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_text(SECRET)
    return inside


def _refused(data_dir, requested: str) -> str:
    with pytest.raises(InvalidInput) as refused:
        job.load_history(CsvSource(requested), data_dir)
    message = str(refused.value)
    assert message.startswith("csv_path: "), message
    assert "secret-line" not in message
    return message


def test_without_a_data_dir_csv_path_is_refused_naming_the_flag(tmp_path):
    write_csv(tmp_path / "h.csv", [Point("a", 1000.0, 1.0, 50.0, 0.0)])
    with pytest.raises(FailedPrecondition, match=r"^csv_path: .*--data-dir"):
        job.load_history(CsvSource(str(tmp_path / "h.csv")))


def test_an_absolute_path_outside_the_data_dir_is_refused(data_dir):
    message = _refused(data_dir, str(data_dir.parent / "outside" / "secret.csv"))
    assert "outside the trainer's --data-dir" in message


def test_an_outside_file_that_does_not_exist_gets_the_same_answer(data_dir):
    # Otherwise the answer would tell which files exist outside.
    there = _refused(data_dir, str(data_dir.parent / "outside" / "secret.csv"))
    missing = _refused(data_dir, str(data_dir.parent / "outside" / "missing.csv"))
    assert there.replace("secret.csv", "X") == missing.replace("missing.csv", "X")


@pytest.mark.parametrize(
    "requested", ["../outside/secret.csv", "./../../{parent}/outside/secret.csv", "{data}/../outside/secret.csv"]
)
def test_dot_dot_out_of_the_data_dir_is_refused(data_dir, requested):
    requested = requested.format(parent=data_dir.parent.name, data=data_dir)
    assert "outside the trainer's --data-dir" in _refused(data_dir, requested)


def test_a_symlink_out_of_the_data_dir_is_refused(data_dir):
    (data_dir / "link.csv").symlink_to(data_dir.parent / "outside" / "secret.csv")
    (data_dir / "linked-dir").symlink_to(data_dir.parent / "outside", target_is_directory=True)
    assert "outside the trainer's --data-dir" in _refused(data_dir, "link.csv")
    assert "outside the trainer's --data-dir" in _refused(data_dir, str(data_dir / "linked-dir" / "secret.csv"))


def test_a_symlink_that_stays_inside_and_a_data_dir_reached_through_a_symlink_are_read(data_dir):
    points = [Point("a", 1000.0 + i, 1.0, 50.0, 0.0) for i in range(3)]
    write_csv(data_dir / "h.csv", points)
    (data_dir / "latest.csv").symlink_to("h.csv")
    alias = data_dir.parent / "alias"
    alias.symlink_to(data_dir, target_is_directory=True)
    assert job.load_history(CsvSource("latest.csv"), data_dir) == points
    assert job.load_history(CsvSource(str(alias / "h.csv")), alias) == points
    assert job.load_history(CsvSource(str(data_dir / "sub" / ".." / "h.csv")), alias) == points


def test_what_is_no_regular_file_is_refused(data_dir):
    os.mkfifo(data_dir / "pipe.csv")  # opening it would block the training
    assert "not a regular file" in _refused(data_dir, "pipe.csv")
    assert "not a regular file" in _refused(data_dir, ".")
    assert "cannot resolve" in _refused(data_dir, "a\0b.csv")


class _Publisher:
    def __init__(self, outcome: PublishOutcome) -> None:
        self.outcome = outcome
        self.models: list[TrainedModel] = []

    def __call__(self, model: TrainedModel) -> PublishOutcome:
        self.models.append(model)
        return self.outcome


SMALL = SyntheticSource(seed=2, backends=2, duration_s=3600.0, interval_s=10.0)


def _trainer(publisher: _Publisher) -> Trainer:
    return Trainer(limits=WindowLimits(), publisher=publisher, now=lambda: 1_790_000_000.0)


def test_run_reports_every_stage_and_publishes_when_asked():
    publisher = _Publisher(PublishOutcome(published=True))
    trainer = _trainer(publisher)
    steps = list(trainer.run(_make(SMALL, publish=True, n_estimators=5)))
    assert [s.stage for s in steps] == list(job.Stage)
    assert all(s.result is None for s in steps[:-1])
    result = steps[-1].result
    assert result is not None
    assert result.published
    assert result.publish_error == ""
    assert publisher.models == [result.model]
    status = trainer.status()
    assert status.training is False
    assert status.last_result == result
    assert status.last_finished_at == 1_790_000_000.0


def test_a_failed_publish_is_part_of_the_result():
    publisher = _Publisher(PublishOutcome(published=False, error="UNAVAILABLE: no predictor"))
    steps = list(_trainer(publisher).run(_make(SMALL, publish=True, n_estimators=5)))
    result = steps[-1].result
    assert result is not None
    assert not result.published
    assert result.publish_error == "UNAVAILABLE: no predictor"
    assert steps[-2].message == "not published: UNAVAILABLE: no predictor"


def test_without_publish_the_publisher_is_not_called():
    publisher = _Publisher(PublishOutcome(published=True))
    steps = list(_trainer(publisher).run(_make(SMALL, n_estimators=5)))
    assert publisher.models == []
    assert steps[-1].result is not None
    assert not steps[-1].result.published
    assert steps[-1].result.publish_error == ""


def test_a_second_run_while_one_is_running_is_refused_and_the_first_still_finishes():
    trainer = _trainer(_Publisher(PublishOutcome(published=True)))
    first = trainer.run(_make(SMALL, n_estimators=5))
    assert next(first).stage is job.Stage.HISTORY
    assert trainer.status().training
    with pytest.raises(FailedPrecondition, match="already running"):
        next(trainer.run(_make(SMALL)))
    assert [s.stage for s in first][-1] is job.Stage.DONE
    assert not trainer.status().training


def test_closing_a_run_midway_frees_the_trainer():
    trainer = _trainer(_Publisher(PublishOutcome(published=True)))
    run = trainer.run(_make(SMALL, n_estimators=5))
    next(run)
    run.close()
    assert not trainer.status().training
    assert trainer.status().last_result is None


def test_too_few_rows_fails_and_frees_the_trainer():
    trainer = _trainer(_Publisher(PublishOutcome(published=True)))
    short = SyntheticSource(seed=1, backends=1, duration_s=900.0, interval_s=10.0)
    with pytest.raises(FailedPrecondition, match="rows have a full 300 s horizon"):
        list(trainer.run(_make(short)))
    assert not trainer.status().training


def test_synthetic_history_is_the_seeded_generator():
    source = SyntheticSource(seed=4, backends=2, duration_s=600.0, interval_s=10.0)
    assert job.load_history(source) == synthetic.random_history(4, 2, 600.0, 10.0).points


def test_a_run_records_its_trigger_and_the_history_it_learnt_from():
    trainer = _trainer(_Publisher(PublishOutcome(published=True)))
    steps = list(trainer.run(_make(SMALL, n_estimators=5), trigger=job.Trigger.FLEET_REFRESH))
    result = steps[-1].result
    assert result is not None
    assert result.trigger is job.Trigger.FLEET_REFRESH
    points = synthetic.random_history(2, 2, 3600.0, 10.0).points
    assert result.model.provenance == Provenance(
        HistorySource.SYNTHETIC, min(p.observed_at for p in points), max(p.observed_at for p in points)
    )


def test_a_feature_store_history_shorter_than_asked_is_a_short_history():
    points = synthetic.random_history(2, 2, 1800.0, 10.0).points
    outcomes: list[str] = []
    trainer = Trainer(
        limits=WindowLimits(),
        publisher=_Publisher(PublishOutcome(True)),
        load=lambda source: points,
        on_finished=lambda outcome, seconds: outcomes.append(outcome),
    )
    with pytest.raises(job.ShortHistory, match="covers 1790 s of event time; this training needs 3600 s") as raised:
        list(trainer.run(_make(job.FeatureStoreSource(duration_s=7200.0, min_span_s=3600.0))))
    assert (raised.value.covered_s, raised.value.needed_s) == (1790.0, 3600.0)
    assert not trainer.status().training
    steps = list(trainer.run(_make(job.FeatureStoreSource(min_span_s=1790.0), n_estimators=5)))
    assert steps[-1].result is not None
    assert steps[-1].result.model.provenance.source is HistorySource.FLEET
    assert outcomes == ["short_history", "trained"], "a look too early is no failed training"
