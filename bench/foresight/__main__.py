"""`python -m bench.foresight`: train on the tuning seeds, run every router
on the reported seeds, replay the real telemetry, write the report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.foresight import faults, model, realtel, report, runner, traffic
from services.common import logs

TUNING_SEEDS = (101, 102, 103)  # the model's training histories
SETTINGS_SEEDS = (104, 105)  # where any setting is chosen, never on the reported ones
REPORTED_SEEDS = (1, 2, 3)  # the report, and nothing else


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.foresight", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("reports"), help="where foresight.md and the plots go")
    p.add_argument("--workers", type=int, default=2, help="worker processes for the closed-loop cases")
    p.add_argument(
        "--seeds",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        help="run these seeds instead of the reported ones, e.g. the settings seeds 104,105 (an ablation)",
    )
    p.add_argument("--classes", type=lambda v: tuple(v.split(",")), help="only these fault classes")
    p.add_argument(
        "--routers",
        nargs="+",
        help='only these routers; an ACE row may change settings: "ACE, in-flight given [error_penalty=0]"',
    )
    p.add_argument(
        "--history",
        choices=sorted(runner.HISTORIES),
        default="own",
        help="what each ACE row's model learns: the history of its own placement without a model (the router's "
        "reactive weighted rotation for plain Decide, its reactive least-loaded choice with in-flight counts); "
        "least outstanding's for the in-flight row instead; round robin's for both; or both for both",
    )
    p.add_argument("--no-real", action="store_true", help="skip the real-telemetry replays")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (synthetic traffic, two fault classes, 15 min runs, one seed): checks the pipeline",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure("foresight", "console", "warning")
    started = time.perf_counter()
    cfg = runner.Config()
    sources: tuple[str, ...] = traffic.SOURCES
    fault_classes: tuple[str, ...] = faults.FAULTS
    tuning: tuple[int, ...] = TUNING_SEEDS
    reported: tuple[int, ...] = REPORTED_SEEDS
    if args.quick:
        cfg = dataclasses.replace(cfg, duration_s=900.0)
        sources, tuning, reported = ("synthetic",), (101,), (1,)
        fault_classes = ("slow_drift", "fail_fast", "quiet")

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", flush=True)

    names: tuple[str, ...] = runner.ROUTERS
    if args.seeds:
        if set(args.seeds) & set(REPORTED_SEEDS):
            raise SystemExit(f"--seeds: {REPORTED_SEEDS} are the reported seeds, used for nothing else")
        reported = args.seeds
    if args.routers:
        names = tuple(args.routers)
    # The model always learns every class, as the reported run's does.
    train_cases = [runner.Case(s, f, seed) for seed in tuning for s in sources for f in fault_classes]
    if args.classes:
        fault_classes = args.classes
    learns = runner.HISTORIES[args.history]
    placements = sorted(set(learns[0]) | set(learns[1]))
    say(
        f"histories of {len(train_cases)} tuning cases (seeds {', '.join(map(str, tuning))}) "
        f"under {' and '.join(placements)}"
    )
    runs = runner.histories(train_cases, cfg, placements, args.workers)
    fitted: dict[tuple[str, ...], model.Forecaster] = {}
    for placement in learns:
        if placement not in fitted:
            points = model.history_points([r for p in placement for r in runs[p]])
            say(
                f"training ACE (horizon {cfg.horizon_s:.0f} s) on {len(points):,} points under {' and '.join(placement)}"
            )
            fitted[placement] = model.fit(points, cfg.horizon_s, cfg.pool.slo_ms)
            m = fitted[placement].trained.metrics
            say(f"  held-out MAE {m.mae_ms:.0f} ms (persistence {m.persistence_mae_ms:.0f}), R² {m.r2:.2f}")
    trained = runner.Trained(fitted[learns[0]].trained, fitted[learns[1]].trained)

    cases = [runner.Case(s, f, seed) for f in fault_classes for s in sources for seed in reported]
    say(f"{len(cases)} cases x {len(names)} routers on {args.workers} workers")

    def progress(done: int, total: int, result: runner.CaseResult) -> None:
        c = result.case
        ace_over = next((u.over_share for n, u in result.users.items() if n.startswith("ACE")), float("nan"))
        say(
            f"case {done}/{total}: {c.source} {c.fault} seed {c.seed} ({result.wall_s:.1f} s; ACE over SLO {ace_over:.2%})"
        )

    first_seed = min(reported)
    results = list(
        runner.run_all(
            cases,
            cfg,
            names,
            trained,
            args.workers,
            keep_timeline=lambda c: c.source == "synthetic" and c.seed == first_seed,
            progress=progress,
        )
    )
    nezha = nab = None
    if not args.no_real:
        say("Nezha: training on the tuning day, replaying the reported day")
        nezha, nezha_model = realtel.nezha()
        say("NAB: replaying ec2_request_latency_system_failure")
        nab = realtel.nab(nezha_model)
    inputs = report.Inputs(
        cfg=cfg,
        names=names,
        results=sorted(results, key=lambda r: (r.case.fault, r.case.source, r.case.seed)),
        tuning_seeds=tuning,
        settings_seeds=SETTINGS_SEEDS,
        reported_seeds=reported,
        sources=sources,
        fault_classes=fault_classes,
        ace=trained,
        training_runs=len(train_cases),
        history=learns,
        nezha=nezha,
        nab=nab,
        wall_s=time.perf_counter() - started,
        command=command(argv),
    )
    path = report.write(inputs, args.out)
    say(f"wrote {path}")
    print(report.headline(inputs))
    print(report.by_class(inputs))
    return 0


def command(argv: Sequence[str] | None) -> str:
    """How the report was made, for its first line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--out", "reports"], []):
        return "make bench-foresight"
    return "python -m bench.foresight " + " ".join(f'"{a}"' if " " in a else a for a in args)


if __name__ == "__main__":
    sys.exit(main())
