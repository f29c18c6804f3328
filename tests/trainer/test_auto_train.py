"""Auto-training through the contracts: a real feature store, predictor and
trainer on port 0. The predictor starts with a model trained on synthetic
history, as `make up` gives it. Then a fleet the synthetic generator does
not make streams its telemetry through Ingest, event time compressed (10 s
apart, sent as fast as the services take it), the test playing the router
(features in, Predict out) as tests/e2e/test_learning_loop.py does. No one calls Train again: the trainer sees the
fleet's history grow past --auto-train-min-history-s, trains on it, publishes
it as a shadow, and the predictor's gate judges it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ace.v1 import predictor_pb2, trainer_pb2
from bench.fleet_history import new_fleet
from services.common import synthetic
from tests import scrape
from tests.e2e.test_learning_loop import Loop, by_step, running_loop

HORIZON_S = 60.0
STEP_S = 10.0
MIN_HISTORY_S = 7200.0  # the default
MIN_LABELS = 160
NAMES = ("feature_store", "predictor", "trainer")
BACKFILL_S = 7000.0  # recorded before the stream starts: below the minimum


@pytest.fixture
def ace(tmp_path: Path) -> Iterator[Loop]:
    trainer_args = [
        "--auto-train",
        "true",
        "--auto-train-min-history-s",
        str(MIN_HISTORY_S),
        "--auto-train-history-s",
        str(2 * MIN_HISTORY_S),
        "--drift-poll-s",
        "0.05",
        "--metrics-port",
        "0",
    ]
    with running_loop(tmp_path, ["--gate-min-labels", str(MIN_LABELS)], trainer_args) as running:
        yield running


def trainer_status(ace: Loop) -> trainer_pb2.TrainerStatus:
    reply: trainer_pb2.TrainerStatus = ace.trainer.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5)
    return reply


def models(ace: Loop) -> dict[str, predictor_pb2.ModelInfo]:
    return {m.metadata.version: m for m in ace.predictor.ListModels(predictor_pb2.ListModelsRequest()).models}


def learnt_fleet(ace: Loop) -> float | None:
    port = ace.servers["trainer"].metrics_port or 0
    return scrape.value(scrape.samples(port), "ace_trainer_active_learnt_fleet")


def wait_until(
    ace: Loop, done: Callable[[trainer_pb2.TrainerStatus], bool], deadline_s: float = 60.0
) -> trainer_pb2.TrainerStatus:
    """The trainer's status once done(status) holds; the trainer polls on
    its own clock. The generous deadline only keeps a broken build from
    hanging."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        status = trainer_status(ace)
        if done(status):
            return status
        time.sleep(0.05)
    pytest.fail(f"not reached; trainer status: {trainer_status(ace)}")


def test_a_fleet_model_is_trained_shadowed_and_judged_without_a_train_call(ace: Loop) -> None:
    # What `make up` does before any fleet telemetry: a synthetic model.
    bootstrap = trainer_pb2.TrainRequest(
        synthetic=trainer_pb2.SyntheticSource(seed=1, backends=4, duration_s=3 * 3600.0),
        horizon_s=HORIZON_S,
        n_estimators=20,
        publish=True,
    )
    first = list(ace.trainer.Train(bootstrap, timeout=120, metadata=ace.admin))[-1].result
    assert first.published, first.publish_error
    assert first.trigger == trainer_pb2.OPERATOR
    shipped = first.version
    assert models(ace)[shipped].metadata.history_source == predictor_pb2.HISTORY_SOURCE_SYNTHETIC

    fleet = new_fleet(seed=5, n_backends=4, duration_s=3 * 3600.0)
    start = synthetic.EPOCH
    ace.ingest([p for p in fleet if p.observed_at <= start + BACKFILL_S])
    steps = iter(by_step([p for p in fleet if p.observed_at > start + BACKFILL_S]))

    # Below the minimum the trainer only looks at the history, and says so.
    ace.step(next(steps))
    waiting = wait_until(ace, lambda s: "history" in s.retrain.waiting_for).retrain
    assert waiting.started == 0 and "of 7200 s" in waiting.waiting_for, waiting
    assert all(v.role != predictor_pb2.CANDIDATE for v in ace.health().versions)
    # Event time stands still once the history covers the minimum, so that
    # the candidate learns exactly that (and the test repeats).
    for _ in range(int((MIN_HISTORY_S - BACKFILL_S) / STEP_S)):
        ace.step(next(steps))
    wait_until(ace, lambda s: s.retrain.started == 1)
    candidate = next(v.version for v in ace.health().versions if v.role == predictor_pb2.CANDIDATE)
    meta = models(ace)[candidate].metadata
    assert meta.history_source == predictor_pb2.HISTORY_SOURCE_FLEET
    assert meta.history_start_at.seconds == pytest.approx(start + STEP_S, abs=1)
    assert meta.history_end_at.seconds - meta.history_start_at.seconds >= MIN_HISTORY_S
    assert meta.horizon_s == HORIZON_S, "at the active version's horizon, so the gate can compare them"
    status = trainer_status(ace)
    assert status.last_result.version == candidate
    assert status.last_result.trigger == trainer_pb2.FLEET_FIRST
    assert status.retrain.auto_train and status.retrain.started == 1
    assert status.retrain.active_history_source == predictor_pb2.HISTORY_SOURCE_SYNTHETIC
    assert learnt_fleet(ace) == 0
    assert status.retrain.next_due_at.seconds >= meta.history_end_at.seconds

    # The gate judges the candidate on the fleet's labels.
    verdict = predictor_pb2.WAIT
    for _ in range(int(MIN_LABELS / 4 + 3 * HORIZON_S / STEP_S) + 100):
        ace.step(next(steps))
        gate = ace.health().last_gate
        if gate.subject_version == candidate and gate.verdict != predictor_pb2.WAIT:
            verdict = gate.verdict
            break
    assert verdict == predictor_pb2.PROMOTE, ace.health().last_gate.reason
    active = ace.predictor.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5)
    assert active.metadata.version == candidate
    assert models(ace)[shipped].role == predictor_pb2.PREVIOUS
    wait_until(ace, lambda s: s.retrain.active_history_source == predictor_pb2.HISTORY_SOURCE_FLEET)
    assert learnt_fleet(ace) == 1
    print(f"\nauto-train: {ace.health().last_gate.reason}")
