"""The learning loop's logic without a network: a real Registry with small
constant-forecast ONNX models, fed forecasts and truth in event time, the
worker and the tick called by hand."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from services.common.drift import Direction, PageHinkleySettings
from services.predictor.gate import GateSettings, Verdict
from services.predictor.loop import Health, Loop, LoopSettings
from services.predictor.registry import Registry, Role
from services.predictor.scoring import Limits, Scorer
from services.predictor.trust import TrustSettings
from tests.predictor import models

HORIZON_S = 30.0  # models.make_meta's
STEP_S = 10.0
MIN_LABELS = 20


def publish(registry: Registry, version: str, value_ms: float, *, shadow: bool = False) -> None:
    onnx = models.onnx_constant(value_ms)
    registry.publish(models.make_meta(onnx, version=version, shadow=shadow), onnx)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(tmp_path)
    publish(reg, "good", 100.0)
    return reg


def make_loop(registry: Registry, **overrides: object) -> Loop:
    settings = LoopSettings(
        gate=GateSettings(min_labels=MIN_LABELS),
        error_drift=PageHinkleySettings(delta=0.05, threshold=5.0, min_samples=10, direction=Direction.UP),
        feature_drift=PageHinkleySettings(delta=0.1, threshold=20.0, direction=Direction.BOTH),
        **overrides,  # type: ignore[arg-type]
    )
    return Loop(registry, Scorer(Limits(window_s=0), threshold_ms=300.0), settings)


class Traffic:
    """Two backends, a forecast and a point every STEP_S of event time."""

    def __init__(self, loop: Loop, registry: Registry) -> None:
        self.loop, self.registry = loop, registry
        self.t = 1_000_000.0
        self.x = models.inputs(2, seed=3)

    def run(self, steps: int, truth_ms: float) -> None:
        for _ in range(steps):
            self.t += STEP_S
            model = self.registry.active
            assert model is not None
            self.loop.record(model, ["a", "b"], [self.t, self.t], self.x, model.predict(self.x).tolist())
            self.loop.process_pending()
            self.loop.observe([("a", self.t, truth_ms), ("b", self.t, truth_ms)])
            self.loop.tick()


def roles(registry: Registry) -> dict[str, Role | None]:
    return {info.meta.version: info.role for info in registry.list()}


def test_forecasts_are_scored_against_what_followed(registry: Registry) -> None:
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(10, truth_ms=150.0)
    health = loop.health()
    (active,) = health.versions
    assert active.version == "good" and active.role is Role.ACTIVE
    # Each step's forecasts are labelled once a point HORIZON_S later exists.
    assert active.scores.labels == 2 * (10 - int(HORIZON_S / STEP_S))
    assert active.scores.mae_ms == pytest.approx(50.0, abs=0.01)
    assert health.counts.pending == 2 * int(HORIZON_S / STEP_S)
    assert health.newest_point_at == traffic.t


def test_a_matrix_without_event_times_is_served_but_not_scored(registry: Registry) -> None:
    loop = make_loop(registry)
    model = registry.active
    assert model is not None
    x = models.inputs(2)
    loop.record(model, ["a", "b"], [], x, model.predict(x).tolist())
    assert loop.health().counts.pending == 0


def test_a_candidate_no_worse_is_promoted_and_the_old_version_kept_as_previous(registry: Registry) -> None:
    publish(registry, "better", 150.0, shadow=True)
    loop = make_loop(registry)
    Traffic(loop, registry).run(5, truth_ms=150.0)
    assert registry.active is not None and registry.active.version == "good", "too few labels to decide"
    assert loop.health().last_gate is not None and loop.health().last_gate.decision.verdict is Verdict.WAIT  # type: ignore[union-attr]
    Traffic(loop, registry).run(MIN_LABELS, truth_ms=150.0)
    assert registry.active is not None and registry.active.version == "better"
    assert roles(registry) == {"good": Role.PREVIOUS, "better": Role.ACTIVE}
    # Health shows the promotion: the rollback rule does not judge the same
    # labels again in that tick (its KEEP used to hide the PROMOTE).
    gate = loop.health().last_gate
    assert gate is not None and gate.decision.verdict is Verdict.PROMOTE


def test_a_worse_candidate_is_refused_once_and_stays_in_shadow(registry: Registry) -> None:
    publish(registry, "worse", 1000.0, shadow=True)
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(MIN_LABELS, truth_ms=100.0)
    gate = loop.health().last_gate
    assert gate is not None and gate.decision.verdict is Verdict.REFUSE
    assert gate.subject_version == "worse" and gate.reference_version == "good"
    traffic.run(MIN_LABELS, truth_ms=1000.0)  # now it would pass: it is not judged again
    again = loop.health().last_gate
    assert again is not None and again.decision == gate.decision
    assert roles(registry) == {"good": Role.ACTIVE, "worse": Role.CANDIDATE}


def test_a_forced_bad_version_is_rolled_back_to_the_previous_one(registry: Registry) -> None:
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(5, truth_ms=100.0)
    publish(registry, "bad", 2000.0)  # no shadow, no stage_only: the operator's forced publish
    assert roles(registry) == {"good": Role.PREVIOUS, "bad": Role.ACTIVE}
    traffic.run(MIN_LABELS, truth_ms=100.0)
    gate = loop.health().last_gate
    assert gate is not None and gate.decision.verdict is Verdict.ROLL_BACK
    assert registry.active is not None and registry.active.version == "good"
    assert roles(registry) == {"good": Role.ACTIVE, "bad": None}


class ReadDuringRollback(Registry):
    """Has the loop's health read from another thread just after a rollback
    changed the roles, as a GetModelHealth call may be."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loop: Loop | None = None
        self.readers: list[threading.Thread] = []
        self.seen: list[Health] = []

    def restore_previous(self, active_version: str, reason: str) -> bool:
        done = super().restore_previous(active_version, reason)
        loop = self.loop
        assert loop is not None
        reader = threading.Thread(target=lambda: self.seen.append(loop.health()))
        reader.start()
        reader.join(0.2)  # long enough for a reader that does not wait for the verdict
        self.readers.append(reader)
        return done


def test_health_never_shows_a_rollback_without_its_verdict(tmp_path: Path) -> None:
    registry = ReadDuringRollback(tmp_path)
    publish(registry, "good", 100.0)
    loop = registry.loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(5, truth_ms=100.0)
    publish(registry, "bad", 2000.0)
    traffic.run(MIN_LABELS, truth_ms=100.0)
    for reader in registry.readers:
        reader.join(10)
    (health,) = registry.seen
    active = next(v for v in health.versions if v.role is Role.ACTIVE)
    assert active.version == "good"
    assert health.last_gate is not None and health.last_gate.decision.verdict is Verdict.ROLL_BACK


def test_the_rollback_rule_keeps_a_version_that_is_no_worse(registry: Registry) -> None:
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    publish(registry, "same", 100.0)
    traffic.run(3 * MIN_LABELS, truth_ms=100.0)
    gate = loop.health().last_gate
    assert gate is not None and gate.decision.verdict is Verdict.KEEP
    # Judged on blocks of fresh labels, never on a label twice.
    assert MIN_LABELS <= gate.decision.labels < 2 * MIN_LABELS + 4
    assert registry.active is not None and registry.active.version == "same"


def test_error_drift_fires_when_the_truth_moves_and_not_before(registry: Registry) -> None:
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(60, truth_ms=100.0)
    assert loop.health().error_drift.fires == 0
    traffic.run(60, truth_ms=600.0)
    drift = loop.health().error_drift
    assert drift.fires == 1
    assert drift.fired_at is not None and drift.fired_at > traffic.t - 60 * STEP_S


def test_a_new_active_version_resets_the_error_detector_and_keeps_the_count(registry: Registry) -> None:
    loop = make_loop(registry)
    traffic = Traffic(loop, registry)
    traffic.run(20, truth_ms=100.0)
    before = loop.health().error_drift.samples
    assert before > 0
    publish(registry, "next", 100.0)
    traffic.run(1, truth_ms=100.0)
    assert loop.health().error_drift.samples < before


def test_feature_drift_follows_the_active_versions_training_statistics(registry: Registry) -> None:
    onnx = models.onnx_constant(100.0)
    k = models.K
    # What models.inputs draws: uniform on [0, 100].
    meta = models.make_meta(onnx, version="stats", feature_means=(50.0,) * k, feature_stds=(100 / 12**0.5,) * k)
    registry.publish(meta, onnx)
    loop = make_loop(registry)
    model = registry.active
    assert model is not None
    t = 1_000_000.0
    for _ in range(200):
        t += HORIZON_S
        x = models.inputs(1, seed=int(t) % 1000)
        loop.record(model, ["a"], [t], x, model.predict(x).tolist())
        loop.process_pending()
    drift = dict(loop.health().feature_drift)
    assert set(drift) == set(model.meta.feature_names)
    assert sum(state.fires for state in drift.values()) == 0, "inputs as in training"
    for _ in range(200):
        t += HORIZON_S
        x = models.inputs(1, seed=int(t) % 1000) + np.float32(50.0)
        loop.record(model, ["a"], [t], x, model.predict(x).tolist())
        loop.process_pending()
    drift = dict(loop.health().feature_drift)
    assert all(state.fires >= 1 for state in drift.values()), "every feature moved by 1.7 sd"


def test_a_full_queue_drops_shadow_work_but_never_the_active_forecasts(registry: Registry) -> None:
    publish(registry, "cand", 100.0, shadow=True)
    loop = make_loop(registry, shadow_queue=1)
    model = registry.active
    assert model is not None
    x = models.inputs(1)
    for t in (10.0, 20.0, 30.0):
        loop.record(model, ["a"], [t], x, model.predict(x).tolist())
    health = loop.health()
    assert health.dropped_batches == 2
    assert health.counts.pending == 2, "the active forecasts of the two calls that found the queue full"
    assert loop.process_pending() == 1
    assert loop.health().counts.pending == 4, "plus the queued call's, for the active version and the candidate"


def test_a_version_earns_trust_on_breaches_it_forecast_and_loses_it_on_false_ones(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    publish(registry, "alarmist", 400.0)  # always forecasts a breach
    trust = TrustSettings(min_labels=MIN_LABELS, min_breaches=10)
    loop = make_loop(registry, trust=trust)
    traffic = Traffic(loop, registry)
    assert not loop.trust("alarmist").proven  # nothing scored yet
    traffic.run(20, truth_ms=450.0)  # the fleet breaches: every forecast was right
    assert loop.trust("alarmist").proven
    (health,) = loop.health().versions
    assert health.trust.proven and "proven on this fleet" in health.trust.reason
    # The fleet recovers and the version goes on forecasting breaches: the
    # false ones soon outnumber the true ones still in the scores.
    traffic.run(200, truth_ms=100.0)
    assert not loop.trust("alarmist").proven
    assert "not followed" in loop.trust("alarmist").reason


def test_with_the_trust_gate_off_every_version_is_trusted(registry: Registry) -> None:
    loop = make_loop(registry, trust=TrustSettings(enabled=False))
    assert loop.trust("good").proven and loop.trust("unknown").proven


def test_a_candidate_promoted_over_a_proven_version_before_it_is_judged_inherits_its_trust(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    publish(registry, "alarmist", 400.0)
    loop = make_loop(registry, trust=TrustSettings(min_labels=MIN_LABELS, min_breaches=10))
    traffic = Traffic(loop, registry)
    traffic.run(20, truth_ms=450.0)
    assert loop.trust("alarmist").proven
    # The fleet calms down; a retrained version arrives that forecasts it
    # well, but no breach has happened since: its labels cannot judge it.
    publish(registry, "calm", 100.0, shadow=True)
    traffic.run(MIN_LABELS, truth_ms=100.0)
    assert registry.active is not None and registry.active.version == "calm"
    assert loop.trust("calm").proven and "inherited at promotion from alarmist" in loop.trust("calm").reason


def test_forecasts_are_scaled_to_the_cut_off_fitted_on_the_labels(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    publish(registry, "doubling", 900.0)  # the fleet breaches at 450 ms: twice the truth
    loop = make_loop(registry, trust=TrustSettings(min_labels=MIN_LABELS, min_breaches=10))
    traffic = Traffic(loop, registry)
    traffic.run(5, truth_ms=450.0)
    assert loop.scale("doubling") == 1.0, "too few labels to fit on"
    traffic.run(20, truth_ms=450.0)
    # Every forecast (900 ms) was followed by a breach: the cut-off is 900 ms.
    assert loop.scale("doubling") == pytest.approx(300.0 / 900.0)
    (health,) = loop.health().versions
    assert health.scale == loop.scale("doubling") and health.trust.proven


def test_with_calibration_off_forecasts_are_served_raw(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    publish(registry, "doubling", 900.0)
    loop = make_loop(registry, trust=TrustSettings(min_labels=MIN_LABELS, min_breaches=10), calibrate=False)
    Traffic(loop, registry).run(25, truth_ms=450.0)
    assert loop.scale("doubling") == 1.0
