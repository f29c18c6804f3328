"""Training ACE's forecaster for the benchmark with the trainer's own code:
telemetry histories → services.trainer.dataset.build (the same Window and
features the feature store runs) → services.trainer.train.train (forest,
ONNX export, verification) → services.predictor.model.load_and_validate,
which gives the onnxruntime session the predictor would serve.

The histories are the telemetry of round-robin runs on the tuning seeds:
what a fleet records before ACE steers it, with breaches left to happen.
The nowcast variant is the same pipeline with a horizon of one telemetry
interval: it predicts the next interval's latency, not the worst of the
next five minutes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.foresight.sim import Run
from services.common import synthetic
from services.common.telemetry import Point
from services.common.window import WindowLimits
from services.predictor.model import LoadedModel, ModelMeta, load_and_validate
from services.trainer import dataset, train
from services.trainer.train import TrainedModel, TrainParams

# Fixed so that the same histories give the same model version.
TRAINED_AT = 1_790_000_000.0


@dataclass(frozen=True)
class Forecaster:
    """A served model and what the trainer measured of it."""

    loaded: LoadedModel
    trained: TrainedModel


def history_points(runs: list[Run], gap_s: float = 3600.0) -> list[Point]:
    """Every backend's telemetry of every run as one history. Runs are laid
    one after the other in event time (with a gap longer than any window or
    horizon), so the trainer's temporal split holds out the last runs."""
    points: list[Point] = []
    offset = synthetic.EPOCH
    for i, run in enumerate(runs):
        for b in range(run.load.shape[1]):
            backend_id = f"run{i:03d}-b{b}"
            for k, at in enumerate(run.tick_s.tolist()):
                points.append(
                    Point(
                        backend_id,
                        offset + at,
                        float(run.load[k, b]),
                        float(run.latency_tel_ms[k, b]),
                        float(run.error_rate[k, b]),
                    )
                )
        offset += float(run.tick_s[-1]) + gap_s
    return points


def fit(points: list[Point], horizon_s: float, threshold_ms: float, seed: int = train.DEFAULT_SEED) -> Forecaster:
    rows = dataset.build(points, horizon_s, WindowLimits())
    trained = train.train(
        rows, TrainParams(horizon_s=horizon_s, threshold_ms=threshold_ms, seed=seed), now=lambda: TRAINED_AT
    )
    return Forecaster(load(trained), trained)


def meta(trained: TrainedModel) -> ModelMeta:
    return ModelMeta(
        version=trained.version,
        schema_version=trained.schema_version,
        feature_names=trained.feature_names,
        sha256=trained.sha256,
        size_bytes=trained.size_bytes,
        horizon_s=trained.horizon_s,
        trained_at=trained.trained_at,
        reference_inputs=tuple(np.asarray(trained.reference_inputs).reshape(-1).tolist()),
        reference_outputs=tuple(np.asarray(trained.reference_outputs).tolist()),
        reference_tolerance_ms=trained.reference_tolerance_ms,
        metrics=trained.metrics.as_map(),
    )


def load(trained: TrainedModel) -> LoadedModel:
    return load_and_validate(meta(trained), trained.onnx_bytes)
