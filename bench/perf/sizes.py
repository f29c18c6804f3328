"""How much each benchmark does: the full run behind docs/benchmarks.md and
the smoke run `make test` uses to keep this code from rotting."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    # Backends a Decide request (and a local pick) names.
    candidates: int = 5
    # Short blocks, many rounds: drift on a shared machine hits both sides.
    latency_rounds: int = 10
    latency_calls: int = 200
    throughput_rounds: int = 10
    throughput_s: float = 0.75
    in_flight: int = 16
    # The first is the baseline of the scaling row.
    fleet_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    picks: int = 200_000
    # History the forest is trained on (seeded synthetic).
    train_backends: int = 6
    train_hours: float = 6.0
    predict_rows: int = 1_000
    predict_rounds: int = 4
    predict_calls: int = 25
    one_row_calls: int = 2_000
    sklearn_one_row_calls: int = 50
    staleness_backends: int = 1_000
    staleness_s: float = 10.0
    # Every backend reports once per this many seconds, spread evenly.
    report_interval_s: float = 1.0
    ingest_s: float = 2.0
    ingest_batch: int = 1_000
    # Fresh points built beforehand for each run; one that outruns them
    # sends them again, and a point sent again replaces itself.
    unary_points: int = 10_000
    batched_points: int = 300_000
    ingest_stream_points: int = 100_000
    memory_backends: int = 10_000
    memory_points: int = 256
    swap_versions: int = 5
    swap_quiet_s: float = 3.0
    swap_gap_s: float = 0.5
    # Time allowed for each publish when sizing the load run.
    swap_publish_s: float = 1.0
    swap_rows: int = 10
    prototype_decisions: int = 200
    # Full-size fleets run as separate processes; the smoke run starts them in-process.
    processes: bool = True


FULL = Sizes("full")
SMOKE = Sizes(
    "smoke",
    latency_rounds=1,
    latency_calls=20,
    throughput_rounds=1,
    throughput_s=0.2,
    in_flight=4,
    fleet_sizes=(6, 20, 50),
    picks=1_000,
    train_backends=2,
    train_hours=1.5,
    predict_rows=20,
    predict_rounds=1,
    predict_calls=3,
    one_row_calls=20,
    sklearn_one_row_calls=2,
    staleness_backends=10,
    staleness_s=0.5,
    report_interval_s=0.1,
    ingest_s=0.2,
    ingest_batch=50,
    unary_points=200,
    batched_points=1_000,
    ingest_stream_points=200,
    memory_backends=20,
    memory_points=20,
    swap_versions=1,
    swap_quiet_s=0.1,
    swap_gap_s=0.05,
    swap_publish_s=0.3,
    swap_rows=2,
    prototype_decisions=3,
    processes=False,
)
