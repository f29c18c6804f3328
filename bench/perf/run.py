"""Runs every benchmark, prints the table and writes docs/benchmarks.md.

python -m bench.perf            # `make bench`: full sizes, a few minutes
python -m bench.perf --smoke    # tiny sizes, seconds; what `make test` runs
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.perf import decide, fixtures, ingest, predict, prototype, report, staleness
from bench.perf.sizes import FULL, SMOKE
from bench.perf.timing import Row

DEFAULT_OUT = Path("docs/benchmarks.md")

METHOD = """
## How each figure is measured

- **Servers** are ACE's own: the router's servicer over a routing table built directly (no sync loop, so
  nothing else runs while `Decide` is timed), the predictor and the feature store as `start()` makes them,
  all on the server setup every service shares (`services/common/serving.py`). The **echo** baseline is a
  unary method registered on the very server that serves `Decide`, so both pass the same interceptor and
  thread pool; it returns its request's bytes. Those servers serve no metrics; the **metrics on** rows
  run `Decide` on a second router set up as the router's `start` sets it up (the gRPC metrics
  interceptor, the decision counter, the collectors, the HTTP port), measured in the same blocks.
- **Clients** run in a separate worker process, so their Python never shares a GIL with the server. They
  send serialized requests and do not parse answers, for the figure and its baseline alike. Sequential
  latency alternates blocks of calls between the figure and its baseline, so drift hits both; throughput
  keeps a fixed number of calls in flight and quotes the median of the rounds.
- **`Decide`** requests name 5 candidates out of the fleet, as a proxy that knows which backends serve a
  request does; one in seven backends is forecast over the threshold, so decisions skip and reroute. A
  request naming no candidates is answered from the whole table, and its answer lists every other
  backend as a fallback, so its cost grows with the fleet: that row is there to show it.
- **Local picks** are `RouterClient.pick` calls in one thread, after the client received the table over
  `WatchRoutingTable` from the same router.
- **Staleness** runs the feature store, predictor and router as separate processes (as `make up` does),
  with a model trained by ACE's trainer; after a warm-up every backend reports once per interval, spread
  evenly, and each point's lag runs from just before its `Ingest` call to the moment the client's table
  shows the backend at that event time.
- **The forest** is the trainer's (`services/trainer/train.py` defaults) fitted on seeded synthetic
  history; scikit-learn's `predict` on that fitted forest is the baseline, at its default of one thread
  (its fastest here: `n_jobs=2` took 23 ms for 1,000 rows against 5.6 ms). onnxruntime serves the ONNX
  export with two intra-op threads and no spinning; it splits only batches of more than 50 rows, so a
  one-row call runs on one thread.
- **Memory** is the resident set of a fresh process running a feature-store server whose windows are full
  and whose vectors are all computed, against the same process before the windows were filled.
- **Model swap**: a worker calls `Predict` back to back while this process publishes new versions through
  `PublishModel`; calls that overlap a publish are compared with those well clear of one.
- **The prototype's way** is rebuilt from its description (its code is not in this repository): per
  decision, each candidate's window is cut out of a pandas DataFrame, the same features are computed with
  pandas, and scikit-learn predicts on them; ACE's figure is `Decide`'s sequential p50 from the same run.
"""


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the code runs, measures nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the table is written")
    args = parser.parse_args(argv)
    fixtures.quiet()
    sizes = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=fixtures.quiet) as worker:
        forest = fixtures.train_forest(sizes.train_backends, sizes.train_hours)
        rows, figures = decide.run(sizes, worker)
        rows += staleness.run(sizes, forest)
        rows += predict.run(sizes, forest, worker)
        rows += ingest.run(sizes, worker)
        rows += prototype.run(sizes, forest, figures.p50_s)
    elapsed = time.perf_counter() - started
    command = "python -m bench.perf --smoke" if args.smoke else "make bench"
    print("\n".join(report.table(rows)))
    report.write(args.out, report.document(rows, sizes, command, elapsed, METHOD))
    print(f"\nwritten to {args.out} ({elapsed:.0f} s)")
    return rows
