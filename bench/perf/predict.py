"""The predictor against scikit-learn on the same forest: one row, a batch
of a thousand backends in one Predict, and Predict latency while new model
versions are swapped in under load."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path

import grpc
import numpy as np

from ace.v1 import predictor_pb2, telemetry_pb2
from bench.perf import load
from bench.perf.fixtures import Forest, backend_name
from bench.perf.fleet import INSECURE_ADMIN, service_process
from bench.perf.sizes import Sizes
from bench.perf.timing import TIMES, Row, mean_s, median, pct, per_call_s, us
from services.common.features import SCHEMA_VERSION
from services.predictor import server as pr_server
from services.predictor.model import load_and_validate
from services.trainer import train
from services.trainer.publish import publish

PREDICT_METHOD = "/ace.v1.Predictor/Predict"


def request_of(rows: np.ndarray) -> bytes:
    """One FeatureVector a row, the form a single-row call uses."""
    return predictor_pb2.PredictRequest(
        vectors=[
            telemetry_pb2.FeatureVector(backend_id=backend_name(i), schema_version=SCHEMA_VERSION, values=row)
            for i, row in enumerate(rows.tolist())
        ]
    ).SerializeToString()


def matrix_request_of(rows: np.ndarray) -> bytes:
    """The rows as one FeatureMatrix, the form the router's sync loop sends."""
    matrix = predictor_pb2.FeatureMatrix(
        backend_ids=[backend_name(i) for i in range(len(rows))],
        schema_version=SCHEMA_VERSION,
        values=rows.ravel().tolist(),
    )
    return predictor_pb2.PredictRequest(matrix=matrix).SerializeToString()


def run(sizes: Sizes, forest: Forest, worker: Executor) -> list[Row]:
    X = np.asarray(forest.X, dtype=np.float64)
    rows = _one_row(sizes, forest, X)
    with (
        tempfile.TemporaryDirectory(prefix="ace-bench-") as tmp,
        service_process(
            "predictor", ["--model-dir", str(Path(tmp) / "models"), *INSECURE_ADMIN], sizes.processes
        ) as addr,
        grpc.insecure_channel(addr) as channel,
    ):
        _publish(channel, forest, "bench-0")
        rows += _batch(sizes, forest, X, addr, worker)
        rows.append(_swap(sizes, forest, X, addr, channel, worker))
    return rows


def _publish(channel: grpc.Channel, forest: Forest, version: str) -> None:
    outcome = publish(channel, forest.metadata(version), forest.model.onnx_bytes)
    if not outcome.published:
        raise RuntimeError(f"publishing {version} failed: {outcome.error}")


def _one_row(sizes: Sizes, forest: Forest, X: np.ndarray) -> list[Row]:
    model = load_and_validate(pr_server.meta_from_proto(forest.metadata("bench-row")), forest.model.onnx_bytes)
    row = [(SCHEMA_VERSION, X[0].tolist())]
    ours = mean_s(lambda: model.score(row), sizes.one_row_calls)
    sklearn = mean_s(lambda: train.predict(forest.fitted, X[:1]), sizes.sklearn_one_row_calls)
    return [
        Row(
            f"predictor, one row: the model code `Predict` runs, in process ({forest.trees} trees)",
            us(ours),
            f"scikit-learn `predict` {us(sklearn)}",
            f"{sklearn / ours:,.0f} {TIMES} faster",
            f"≥ 100 {TIMES} faster",
            sklearn >= 100 * ours,
        )
    ]


def _batch(sizes: Sizes, forest: Forest, X: np.ndarray, addr: str, worker: Executor) -> list[Row]:
    n = sizes.predict_rows
    batch = X[:n]
    jobs: list[load.Job] = [
        ("batch", addr, PREDICT_METHOD, matrix_request_of(batch)),
        ("vectors", addr, PREDICT_METHOD, request_of(batch)),
        ("one", addr, PREDICT_METHOD, request_of(X[:1])),
    ]
    seq = worker.submit(load.latencies, jobs, sizes.predict_rounds, sizes.predict_calls).result()
    sklearn_batch = median(per_call_s(lambda: train.predict(forest.fitted, batch), max(sizes.predict_calls // 2, 2)))
    sklearn_one = median(per_call_s(lambda: train.predict(forest.fitted, X[:1]), sizes.sklearn_one_row_calls))
    ours = pct(seq["batch"], 50)
    vectors = pct(seq["vectors"], 50)
    one = pct(seq["one"], 50)
    return [
        Row(
            "`Predict` RPC, one row (p50)",
            us(one),
            f"scikit-learn `predict` {us(sklearn_one)}",
            f"{sklearn_one / one:,.1f} {TIMES} faster",
            "—",
            None,
        ),
        Row(
            f"`Predict` RPC, {n:,} backends in one call as a `FeatureMatrix`, the router's form (p50)",
            us(ours),
            f"scikit-learn `predict` on the same rows {us(sklearn_batch)}",
            f"{sklearn_batch / ours:.1f} {TIMES} faster",
            f"≥ 3 {TIMES} faster; ≤ 10 ms",
            sklearn_batch >= 3 * ours and ours <= 0.010,
        ),
        Row(
            f"`Predict` RPC, the same {n:,} rows as one `FeatureVector` each (p50)",
            us(vectors),
            f"scikit-learn `predict` on the same rows {us(sklearn_batch)}",
            f"{sklearn_batch / vectors:.1f} {TIMES} faster",
            "—",
            None,
        ),
    ]


def _swap(sizes: Sizes, forest: Forest, X: np.ndarray, addr: str, channel: grpc.Channel, worker: Executor) -> Row:
    """A worker sends Predict back to back while this process publishes new
    versions, as the trainer does from its own; calls overlapping a publish
    are compared with the others."""
    duration = 2 * sizes.swap_quiet_s + (sizes.swap_gap_s + sizes.swap_publish_s) * sizes.swap_versions
    future = worker.submit(load.timed_calls, addr, PREDICT_METHOD, request_of(X[: sizes.swap_rows]), duration)
    time.sleep(sizes.swap_quiet_s)  # the quiet period the baseline comes from
    windows = []
    for i in range(sizes.swap_versions):
        started = time.monotonic()
        _publish(channel, forest, f"bench-swap-{i}")
        windows.append((started, time.monotonic()))
        time.sleep(sizes.swap_gap_s)  # spacing between swaps, so each is measured on its own
    calls = future.result()
    during = [end - start for start, end, _ in calls if any(start < w1 and end > w0 for w0, w1 in windows)]
    quiet = [end - start for start, end, _ in calls if all(end < w0 - 0.2 or start > w1 + 0.2 for w0, w1 in windows)]
    failed = sum(not ok for _, _, ok in calls)
    swap_s = median([w1 - w0 for w0, w1 in windows])
    p99_during, p99_quiet = pct(during, 99), pct(quiet, 99)
    return Row(
        f"model swap under load: `Predict` ({sizes.swap_rows} rows) p99 while {sizes.swap_versions} versions "
        f"are published one by one (each publish {us(swap_s)}; {len(during)} calls overlapped one)",
        f"p99 {us(p99_during)}, {failed} failed of {len(calls):,}",
        f"p99 without a swap {us(p99_quiet)}",
        f"{p99_during / p99_quiet:.2f} {TIMES}",
        f"0 failed; p99 ≤ 2 {TIMES}",
        failed == 0 and p99_during <= 2 * p99_quiet,
    )
