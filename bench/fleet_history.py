"""How much of a fleet's own history a first fleet model needs: the figure
behind the trainer's --auto-train-min-history-s.

A fleet the synthetic generator does not make (NEW_FLEET: faster backends,
larger capacities, higher base load, steeper and more frequent spikes) is
simulated for 5 hours. A model is trained with the trainer's own code on its first H
seconds, for several H, and every model, together with the one `make up`
ships (synthetic history, seed 1, 6 hours), is scored on the same held-out
rows: those of the last two hours. Each seed is a different fleet.

    .venv/bin/python -m bench.fleet_history [--seeds 3]
"""

from __future__ import annotations

import argparse

import numpy as np

from services.common import synthetic
from services.common.synthetic import FleetShape
from services.common.telemetry import Point
from services.common.window import WindowLimits
from services.trainer import dataset, train
from services.trainer.train import TrainedModel, TrainParams

HORIZON_S = 300.0
THRESHOLD_MS = 300.0
LIMITS = WindowLimits(span_s=300.0, max_points=256)
DURATION_S = 5 * 3600.0
TEST_FROM_S = 3 * 3600.0 + HORIZON_S  # no training row's label reaches this
SPANS_S = (1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0)


# Outside the synthetic generator's ranges (FleetShape's defaults): faster
# backends (20-45 ms at no load, not 50-90), 300-900 rps (40-200), busier
# (0.5-0.65 of capacity, not 0.3-0.55), spikes every ~40 min (~1 h) that
# climb in 1-4 min (2-8) and peak higher.
NEW_FLEET = FleetShape(
    capacity_rps=(300.0, 900.0),
    base_latency_ms=(20.0, 45.0),
    base_utilisation=(0.5, 0.65),
    first_spike_mean_s=900.0,
    ramp_up_s=(60.0, 240.0),
    hold_s=(120.0, 600.0),
    ramp_down_s=(60.0, 300.0),
    peak_utilisation=(0.85, 1.3),
    spike_gap_mean_s=2400.0,
)


def new_fleet(seed: int, n_backends: int = 6, duration_s: float = DURATION_S) -> list[Point]:
    return synthetic.random_history(1000 + seed, n_backends, duration_s, shape=NEW_FLEET).points


def score(model: TrainedModel, rows: dataset.Dataset) -> tuple[float, float, float]:
    """log MAE, breach precision and recall of a model's ONNX export."""
    served = train.run_onnx(model.onnx_bytes, rows.X)
    log_mae = float(np.mean(np.abs(np.log1p(served) - np.log1p(rows.y))))
    flagged, breached = served >= THRESHOLD_MS, rows.y >= THRESHOLD_MS
    return log_mae, train.precision(flagged, breached), train.recall(flagged, breached)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_history", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    params = TrainParams(horizon_s=HORIZON_S, threshold_ms=THRESHOLD_MS)
    shipped = train.train(dataset.build(synthetic.random_history(1).points, HORIZON_S, LIMITS), params, now=lambda: 0.0)
    results: dict[str, list[tuple[float, float, float]]] = {}
    for seed in range(args.seeds):
        points = new_fleet(seed)
        full = dataset.build(points, HORIZON_S, LIMITS)
        test_mask = full.times >= synthetic.EPOCH + TEST_FROM_S
        test = dataset.Dataset(
            X=full.X[test_mask],
            y=full.y[test_mask],
            times=full.times[test_mask],
            backend_ids=full.backend_ids[test_mask],
            current_latency_ms=full.current_latency_ms[test_mask],
            horizon_s=HORIZON_S,
            unlabelled=0,
        )
        results.setdefault("synthetic (make up)", []).append(score(shipped, test))
        for span in SPANS_S:
            own = dataset.build([p for p in points if p.observed_at <= synthetic.EPOCH + span], HORIZON_S, LIMITS)
            model = train.train(own, params, now=lambda: 0.0)
            results.setdefault(f"fleet, first {span / 60:.0f} min", []).append(score(model, test))
    print(f"held-out: the last {(DURATION_S - TEST_FROM_S) / 60:.0f} min of each fleet; {args.seeds} fleets")
    print(f"{'model':<24} {'log MAE':>8} {'precision':>9} {'recall':>7}   per fleet (log MAE)")
    for name, rows in results.items():
        mean = np.mean(np.array(rows), axis=0)
        per = " ".join(f"{r[0]:.3f}" for r in rows)
        print(f"{name:<24} {mean[0]:>8.3f} {mean[1]:>9.2f} {mean[2]:>7.2f}   {per}")


if __name__ == "__main__":
    main()
