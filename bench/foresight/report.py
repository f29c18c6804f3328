"""reports/foresight.md and its plots, from the results of a run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from bench.foresight import faults, realtel, routers, runner, score
from bench.foresight.runner import CaseResult, Timeline, Trained
from services.trainer.train import TrainedModel

STATE_LEVEL = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
DPI = 72


@dataclass(frozen=True)
class Inputs:
    cfg: runner.Config
    names: tuple[str, ...]
    results: list[CaseResult]
    tuning_seeds: tuple[int, ...]
    settings_seeds: tuple[int, ...]
    reported_seeds: tuple[int, ...]
    sources: tuple[str, ...]
    fault_classes: tuple[str, ...]
    ace: Trained
    training_runs: int
    # The placements the history of each ACE row's model was recorded under:
    # (plain Decide's, the in-flight row's).
    history: tuple[tuple[str, ...], tuple[str, ...]]
    nezha: realtel.NezhaResult | None
    nab: realtel.NabResult | None
    wall_s: float
    command: str


def _users(results: Sequence[CaseResult], name: str, keep: Callable[[CaseResult], bool]) -> score.Users:
    out = score.Users()
    for r in results:
        if keep(r):
            out.add(r.users[name])
    return out


def _breakers(results: Sequence[CaseResult], name: str, keep: Callable[[CaseResult], bool]) -> score.Breakers | None:
    if not any(name in r.breakers for r in results):
        return None
    out = score.Breakers()
    for r in results:
        if keep(r) and name in r.breakers:
            out.add(r.breakers[name])
    return out


def _ms(v: float) -> str:
    return "—" if math.isnan(v) else ("timeout" if v >= 4999 else f"{v:,.0f}")


def _pct(v: float) -> str:
    return "—" if math.isnan(v) else f"{100 * v:.2f}%"


def _pp(v: float) -> str:
    """A difference of shares, in percentage points."""
    return "—" if math.isnan(v) else f"{100 * v:+.2f}"


def _num(v: float, digits: int = 2) -> str:
    return "—" if math.isnan(v) else f"{v:.{digits}f}"


def _s(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.0f} s"


def everything(_: CaseResult) -> bool:
    return True


def of_class(fault: str) -> Callable[[CaseResult], bool]:
    return lambda r: r.case.fault == fault


def real_peers(inp: Inputs) -> list[str]:
    """The routers a fleet could run today: neither ACE, nor ACE's table
    without a model, nor an oracle."""
    return [n for n in inp.names if not n.startswith("ACE") and n not in runner.ORACLES and n not in runner.NO_FORECAST]


def _breaker_cells(b: score.Breakers | None) -> str:
    """recall | precision | lead p50 | changes/backend-h"""
    if b is None:
        return "| — | — | — | — |"
    return f"| {_num(b.recall)} | {_num(b.precision)} | {_s(b.lead(50))} | {_num(b.changes_per_backend_hour, 1)} |"


def _table(inp: Inputs, keep: Callable[[CaseResult], bool]) -> str:
    oracles = {o: _users(inp.results, o, keep).over_share for o in runner.ORACLES if o in inp.names}
    rows = [
        "| router | p50 ms | p99 ms | over SLO or failed | failed | lost in flight "
        + "".join(f"| vs {o}, pp " for o in oracles)
        + "| breach recall | precision | lead p50 | changes/backend-h |",
        "|---|---:|---:|---:|---:|---:|" + "---:|" * len(oracles) + "---:|---:|---:|---:|",
    ]
    for name in inp.names:
        u = _users(inp.results, name, keep)
        gaps = "".join(f"| {_pp(u.over_share - v)} " for v in oracles.values())
        rows.append(
            f"| {name} | {_ms(u.percentile(50))} | {_ms(u.percentile(99))} | {_pct(u.over_share)} "
            f"| {_pct(u.failed_share)} | {u.lost} {gaps}{_breaker_cells(_breakers(inp.results, name, keep))}"
        )
    return "\n".join(rows)


def headline(inp: Inputs) -> str:
    """Every source, fault class and reported seed together."""
    return _table(inp, everything)


def per_fault(inp: Inputs, fault: str) -> str:
    return _table(inp, of_class(fault))


def by_class(inp: Inputs) -> str:
    """One line per router, the share over the SLO or failed in each class."""
    head = "| router | " + " | ".join(f"`{f}`" for f in inp.fault_classes) + " | all |"
    rows = [head, "|---|" + "---:|" * (len(inp.fault_classes) + 1)]
    for name in inp.names:
        cells = [_pct(_users(inp.results, name, of_class(f)).over_share) for f in inp.fault_classes]
        cells.append(_pct(_users(inp.results, name, everything).over_share))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_source(inp: Inputs) -> str:
    head = "| router | " + " | ".join(f"{s}: over SLO or failed / p99 ms" for s in inp.sources) + " |"
    rows = [head, "|---|" + "---:|" * len(inp.sources)]
    for name in inp.names:
        cells = []
        for source in inp.sources:

            def keep(r: CaseResult, s: str = source) -> bool:
                return r.case.source == s

            u = _users(inp.results, name, keep)
            cells.append(f"{_pct(u.over_share)} / {_ms(u.percentile(99))}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# The placement targets (issue 13): in no class worse than least outstanding
# by more than this, and over all classes this much below the best real peer.
CLASS_MARGIN = 0.002
OVERALL_CUT = 0.25


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    ace: str
    met: bool
    gap: str


def targets(inp: Inputs, name: str) -> list[Target]:
    out = []
    lor = "least outstanding"
    worst_gap, worst_class = -math.inf, ""
    for f in inp.fault_classes:
        gap = _users(inp.results, name, of_class(f)).over_share - _users(inp.results, lor, of_class(f)).over_share
        if gap > worst_gap:
            worst_gap, worst_class = gap, f
    out.append(
        Target(
            "in every fault class, over the SLO or failed, against least outstanding",
            f"at most {100 * CLASS_MARGIN:+.1f} pp",
            f"worst {_pp(worst_gap)} pp (`{worst_class}`)",
            worst_gap <= CLASS_MARGIN,
            "" if worst_gap <= CLASS_MARGIN else f"{100 * (worst_gap - CLASS_MARGIN):.2f} pp too many",
        )
    )
    peers = real_peers(inp)
    best = min(peers, key=lambda n: _users(inp.results, n, everything).over_share)
    best_share = _users(inp.results, best, everything).over_share
    mine = _users(inp.results, name, everything).over_share
    goal = best_share * (1 - OVERALL_CUT)
    out.append(
        Target(
            "all classes, over the SLO or failed",
            f"≤ {_pct(goal)} ({OVERALL_CUT:.0%} below the best real router, {best}: {_pct(best_share)})",
            _pct(mine),
            mine <= goal,
            "" if mine <= goal else f"{mine / best_share:.2f}x the best real router",
        )
    )
    return out


def targets_table(inp: Inputs, name: str) -> str:
    rows = ["| target | goal | ACE | met | how far |", "|---|---|---:|---|---|"]
    for t in targets(inp, name):
        rows.append(f"| {t.what} | {t.goal} | {t.ace} | {'yes' if t.met else 'no'} | {t.gap} |")
    return "\n".join(rows)


def nezha_section(res: realtel.NezhaResult) -> str:
    rows = [
        "| # | pod | fault | isolated | ACE opened after | reactive opened after | ACE ≤ reactive + 60 s |",
        "|---:|---|---|---|---:|---:|---|",
    ]
    both = within = 0

    def show(v: float | None, already: bool) -> str:
        text = "—" if v is None else f"{v:.0f} s"
        return text + (" (was open)" if already else "")

    for i, r in enumerate(res.reactions, 1):
        verdict = ""
        if r.reactive_s is not None:
            both += 1
            ok = r.ace_s is not None and r.ace_s <= r.reactive_s + realtel.STEP_S
            within += ok
            verdict = "yes" if ok else "no"
        rows.append(
            f"| {i} | {r.fault.pod} | {r.fault.kind} | {'yes' if r.isolated else ''} "
            f"| {show(r.ace_s, r.ace_already_open)} | {show(r.reactive_s, r.reactive_already_open)} | {verdict} |"
        )
    ace_rate = res.false_openings["ACE"] / res.fault_free_hours
    reactive_rate = res.false_openings["reactive latency breaker"] / res.fault_free_hours
    summary = (
        f"Of the {both} faults the reactive breaker reacted to (within the fault's own time, up to the next "
        f"injection or 10 min), ACE opened no later than the reactive breaker plus one interval (60 s) on "
        f"**{within}**. Fault-free time: {res.fault_free_hours:.1f} h of the whole fleet ({res.pods} pods); false "
        f"openings: ACE **{res.false_openings['ACE']}** ({ace_rate:.2f} per fault-free hour), reactive "
        f"{res.false_openings['reactive latency breaker']} ({reactive_rate:.2f} per fault-free hour). The "
        f"data README's rule (score a fault only when the previous one is at least 10 min earlier) leaves "
        f"{sum(r.isolated for r in res.reactions)} of the {len(res.reactions)} faults (marked isolated), too few "
        f"to stand alone, so all are shown, each scored until the next injection."
    )
    metrics = res.model_metrics
    model = (
        f"ACE's model here was trained by the trainer on the tuning day's telemetry ({metrics['train_rows']:.0f} "
        f"rows; held-out MAE {metrics['mae_ms']:.0f} ms in scaled units, persistence {metrics['persistence_mae_ms']:.0f} ms)."
    )
    return "\n".join(rows) + "\n\n" + summary + " " + model


def nab_section(res: realtel.NabResult) -> str:
    rows = ["| labelled window | ACE's first alarm | reactive's first alarm |", "|---|---:|---:|"]

    def rel(v: float | None) -> str:
        if v is None:
            return "none"
        return f"{v / 60:+.0f} min from the window's start"

    for w in res.windows:
        start = np.datetime64(int(w.start), "s")
        end = np.datetime64(int(w.end), "s")
        rows.append(f"| {start} to {end} | {rel(w.ace_first_s)} | {rel(w.reactive_first_s)} |")
    return (
        "\n".join(rows)
        + f"\n\nAlarms outside the windows (and the window-length lead-in before each) over {res.days:.0f} days: ACE "
        f"{res.outside['ACE']}, reactive {res.outside['reactive latency breaker']}. Threshold: {res.threshold_raw:.1f} "
        f"(1.25 x the highest value of the probationary first 15%)."
    )


def plot_timeline(t: Timeline, title: str, slo_ms: float, path: Path) -> None:
    minutes = t.tick_s / 60.0
    n = t.load.shape[1]
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.2), sharex=True, gridspec_kw={"height_ratios": [1.1, 1.3, 0.8]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    focus = t.target if t.target is not None else 0
    ax = axes[0]
    for b in range(n):
        ax.plot(minutes, t.load[:, b], color=colours[b], lw=1.0 if b == focus else 0.6, label=f"backend {b} load")
    ax2 = ax.twinx()
    ax2.plot(minutes, t.speed[:, focus], color="black", ls="--", lw=1.0, label=f"backend {focus} capacity")
    ax2.set_ylim(0, max(1.7, float(t.speed.max()) * 1.1))
    ax2.set_ylabel("capacity (x nominal)")
    ax.set_ylabel("requests/s routed")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    ax2.legend(loc="upper right", fontsize=7)
    ax = axes[1]
    ax.plot(minutes, t.reference_latency_ms[:, focus], color="grey", lw=0.8, label="p95, round robin (no steering)")
    ax.plot(minutes, t.latency_ms[:, focus], color=colours[focus], lw=1.0, label="p95 observed under ACE")
    ax.plot(minutes, t.forecast_ms[:, focus], color="red", lw=1.0, label="ACE forecast (worst of next 5 min)")
    ax.axhline(slo_ms, color="black", lw=0.7, ls=":", label="SLO / threshold")
    ax.set_yscale("log")
    ax.set_ylim(20, 6000)
    ax.set_ylabel(f"backend {focus} latency, ms")
    ax.legend(loc="upper left", fontsize=7)
    ax = axes[2]
    for b in range(n):
        levels = [STATE_LEVEL[s[b]] + 0.06 * (b - n / 2) for s in t.states]
        ax.step(minutes, levels, where="post", color=colours[b], lw=1.0 if b == focus else 0.6, label=f"backend {b}")
    ax.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    ax.set_xlabel("minutes")
    ax.legend(loc="upper left", fontsize=7, ncol=n)
    for ax in axes:
        if t.start_s is not None:
            ax.axvspan(t.start_s / 60, (t.end_s or t.start_s) / 60, color="orange", alpha=0.08)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    """A PNG of 64 colours: these plots need no more, and it keeps each file
    a fraction of its full-colour size."""
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


def plot_bars(inp: Inputs, path: Path) -> None:
    names = list(inp.names)
    users = [_users(inp.results, n, everything) for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    y = np.arange(len(names))
    axes[0].barh(y, [u.percentile(99) for u in users], color="tab:blue")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("p99 latency, ms (log)")
    axes[1].barh(y, [100 * u.over_share for u in users], color="tab:red")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("requests over the SLO, % (log)")
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("All traffic sources, fault classes and reported seeds (modelled latency)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def write(inp: Inputs, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    shown: set[str] = set()
    for r in sorted(inp.results, key=lambda r: (r.case.source != "synthetic", r.case.seed)):
        if r.timeline is None or r.case.fault in shown:
            continue
        shown.add(r.case.fault)
        name = f"foresight-{r.case.fault}.png"
        plot_timeline(
            r.timeline,
            f"ACE, {r.case.fault.replace('_', ' ')}: {r.case.source} traffic, seed {r.case.seed}",
            inp.cfg.pool.slo_ms,
            out_dir / name,
        )
        plots.append((r.case.fault, name))
    plot_bars(inp, out_dir / "foresight-routers.png")
    text = render(inp, plots)
    path = out_dir / "foresight.md"
    path.write_text(text)
    return path


def _learns(history: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    plain, in_flight = (" and ".join(h) for h in history)
    if plain == in_flight:
        return f"{plain} for every ACE row"
    return (
        f"its own placement: {plain} for ACE, {in_flight} for ACE, in-flight given "
        "(and for ACE, outcomes reported, whose reactive placement is the same least-loaded choice)"
    )


def _models(inp: Inputs) -> list[tuple[str, TrainedModel]]:
    if inp.ace.ace_in_flight is inp.ace.ace:
        return [("ACE's model", inp.ace.ace)]
    return [("ACE's model", inp.ace.ace), ("The in-flight row's model", inp.ace.ace_in_flight)]


def _metrics(t: TrainedModel) -> str:
    m = t.metrics
    return (
        f"MAE {m.mae_ms:.0f} ms (persistence {m.persistence_mae_ms:.0f} ms), R² {m.r2:.2f}, breach precision / "
        f"recall {m.breach_precision:.2f} / {m.breach_recall:.2f}; {m.train_rows:,} training rows"
    )


def render(inp: Inputs, plots: list[tuple[str, str]]) -> str:
    cfg, pool = inp.cfg, inp.cfg.pool
    s = cfg.settings
    cases = len(inp.results)
    parts = [
        "# Foresight benchmark",
        "",
        f"Written by `{inp.command}` in {inp.wall_s / 60:.1f} min on this machine. Every figure below comes from "
        "that run. **Latency in the closed-loop sections is modelled** (queues with service times from request "
        "sizes), not measured; the Nezha and NAB sections replay recorded telemetry.",
        "",
        "## Setup",
        "",
        f"- **Pool:** {pool.backends} backends, each a first-come, first-served queue with {pool.slots} slots and a "
        f"mean service time of {pool.mean_service_ms:.0f} ms at full speed ({pool.capacity_rps:.1f} requests/s "
        f"each). Offered load averages {cfg.utilisation:.0%} of the pool's nominal capacity. A request waiting or "
        f"running past {pool.timeout_ms / 1000:.0f} s fails. SLO: {pool.slo_ms:.0f} ms. Telemetry every "
        f"{pool.interval_s:.0f} s: load, p95 latency of the interval, error rate.",
        f"- **Runs:** {cfg.duration_s / 60:.0f} min of event time each; requests of the first "
        f"{cfg.score_from_s / 60:.0f} min are not scored (windows fill). {cases} cases (traffic source x fault "
        f"class x seed), every router on the same arrivals, faults and error draws.",
        "- **Traffic:** " + ", ".join(inp.sources) + ". Synthetic: Poisson arrivals at the rate of "
        "`services.common.synthetic.utilisation` (its cycle, drift and spikes). Traces: real arrival times and "
        "token counts, several copies shifted at random and thinned to the target rate; service time from "
        "tokens (prefill 5,000 tokens/s, decode 50 tokens/s), scaled to the pool's mean and clipped to 4x, so "
        "no request breaches the SLO on an idle backend.",
        "- **Fault classes** (those a forecast could see coming, with a precursor in the telemetry ACE ingests: "
        + ", ".join(f"`{f}`" for f in faults.FORESEEABLE if f in inp.fault_classes)
        + "):",
        *[f"  - `{f}`: {faults.DESCRIPTIONS[f]}." for f in inp.fault_classes],
        f"- **Seeds.** ACE's models were trained on telemetry of seeds "
        f"{', '.join(map(str, inp.tuning_seeds))} ({inp.training_runs} runs per placement, every class and "
        f"source), each on the history of {_learns(inp.history)}; settings, "
        f"where any are chosen, on seeds {', '.join(map(str, inp.settings_seeds))}. Reported: seeds "
        f"{', '.join(map(str, inp.reported_seeds))}, used for nothing else.",
        f"- **ACE** is the router's own code: a `services.router.table.RoutingTable` fed, once per interval, what "
        f"the sync loop would give it (`Window` and `features.compute` per backend, the forecast of "
        f"`load_and_validate`'s onnxruntime session for the warm ones), and `RoutingTable.decide` for every "
        f"request: its breakers, rotation, probe turns and `policy.choose`, with nothing copied. "
        f"`tests/foresight/test_same_decisions.py` fails if the benchmark and the router would decide apart. "
        f"Settings: the documented defaults (threshold {s.threshold_ms:.0f} ms, hysteresis {s.hysteresis}, "
        f"min open {s.min_open_s:.0f} s, recovery {s.recovery_s:.0f} s, horizon {s.horizon_s:.0f} s, open "
        f"penalty {s.open_penalty:.0f}, shares by capacity {'on' if s.share_by_capacity else 'off'}, capacity "
        f"smoothing {s.capacity_smoothing}, open share {s.open_share:g}, rate-aware "
        f'{"on" if s.rate_aware else "off"}). "ACE" is `Decide` without in-flight '
        "counts: a weighted rotation, each backend's share following its capacity as estimated from its telemetry "
        '(`policy.capacity_rps`); "ACE, in-flight given" '
        "is `Decide` with the proxy's requests in flight per backend (`DecideRequest.in_flight`): least-loaded, "
        'the new request weighed by the backend\'s speed; "ACE, outcomes reported" is `Decide` without counts from '
        "a proxy that reports how each request ended (`ReportOutcomes`) "
        f"{1000 * routers.REPORT_DELAY_S:.0f} ms after it did: the router places least-loaded on its own counts "
        "of the requests no outcome has ended (`services/router/outstanding.py`), with the in-flight row's model.",
        *[f"- **{what}** on held-out tuning telemetry: {_metrics(t)}." for what, t in _models(inp)],
        "- **Bounds.** The two oracles are handed the pool itself and know the present exactly, not the future: "
        "the room left to placement is the distance of a router to them.",
        "",
        "## Headline (modelled latency)",
        "",
        'All traffic sources, fault classes and reported seeds together. "vs" columns: this router\'s share '
        "over the SLO or failed minus the oracle's, in percentage points. Breaker figures (defined below) are "
        "for the routers that drain backends.",
        "",
        headline(inp),
        "",
        "![p99 and SLO violations per router](foresight-routers.png)",
        "",
        "## Over the SLO or failed, per fault class",
        "",
        by_class(inp),
        "",
        "## Where ACE stands against the placement targets",
        "",
    ]
    if "least outstanding" in inp.names and real_peers(inp):
        for name in runner.ACE_ROWS:
            if name in inp.names:
                parts += [f"{name}:", "", targets_table(inp, name), ""]
        parts += [findings(inp), ""]
    parts += [
        "## Per fault class (modelled latency)",
        "",
    ]
    for f in inp.fault_classes:
        parts += [f"### {f}", "", faults.DESCRIPTIONS[f] + ".", "", per_fault(inp, f), ""]
        for fault, name in plots:
            if fault == f:
                parts += [f"![ACE during {f}]({name})", ""]
    parts += [
        "## Per traffic source (modelled latency)",
        "",
        per_source(inp),
        "",
        "## Definitions",
        "",
        DEFINITIONS,
        "",
    ]
    if inp.nezha is not None:
        parts += ["## Real telemetry: Nezha OnlineBoutique", "", NEZHA_INTRO, "", nezha_section(inp.nezha), ""]
    if inp.nab is not None:
        parts += [
            "## Real telemetry: NAB ec2_request_latency_system_failure",
            "",
            NAB_INTRO,
            "",
            nab_section(inp.nab),
            "",
        ]
    parts += ["## Routers as modelled", "", ROUTERS_TEXT, ""]
    return "\n".join(parts)


def findings(inp: Inputs) -> str:
    """What the figures say, computed from them so that a rerun cannot leave
    a sentence behind its numbers."""

    def share(name: str, keep: Callable[[CaseResult], bool] = everything) -> float:
        return _users(inp.results, name, keep).over_share

    lines = ["What the figures show:", ""]
    peers = real_peers(inp)
    best = min(peers, key=share)
    if runner.CENTRAL_QUEUE in inp.names and runner.ORACLE_SED in inp.names:
        cq, osed = share(runner.CENTRAL_QUEUE), share(runner.ORACLE_SED)
        lines.append(
            f"- **Room left.** The best real router here is {best} at {_pct(share(best))} over the SLO or failed; "
            f"the oracle shortest expected delay reaches {_pct(osed)} and the central queue {_pct(cq)}. "
            f"Placement alone, knowing the present perfectly, could remove "
            f"{_pct(1 - min(osed, cq) / share(best)) if share(best) > 0 else '—'} of {best}'s misses."
        )
        lines.append("- **Where the room is**, class by class (best real router → best oracle):")
        for f in inp.fault_classes:
            keep = of_class(f)
            shares = {n: share(n, keep) for n in peers}
            b = min(shares, key=shares.__getitem__)
            o = min(share(runner.ORACLE_SED, keep), share(runner.CENTRAL_QUEUE, keep))
            lines.append(f"  - `{f}`: {b} {_pct(share(b, keep))} → {_pct(o)}")
    for name in runner.ACE_ROWS:
        if name not in inp.names:
            continue
        worse = [
            f"`{f}` ({_pp(share(name, of_class(f)) - share(best, of_class(f)))} pp)"
            for f in inp.fault_classes
            if share(name, of_class(f)) > share(best, of_class(f)) + CLASS_MARGIN
        ]
        lines.append(
            f"- **{name}**: {_pct(share(name))} overall, {share(name) / share(best):.2f}x {best}. "
            + (
                f"Worse than {best} by more than {100 * CLASS_MARGIN:.1f} pp in " + ", ".join(worse) + "."
                if worse
                else f"Within {100 * CLASS_MARGIN:.1f} pp of {best} or better in every class."
            )
        )
    return "\n".join(lines)


DEFINITIONS = """- **over SLO or failed**: requests whose latency exceeded the SLO, or that failed (a timeout, an error
  answered after service, a refusal by a backend that is down, a request lost at a crash): an error is no
  better than a slow answer. **failed**: the failures alone. **lost in flight**: requests in service or queued
  on a backend when it crashed. Percentiles pool all scored requests, failures in the timeout bin (0.7% wide
  histogram bins; "timeout" means the percentile falls in that bin).
- **vs oracle, pp**: the router's share over the SLO or failed minus the oracle's, in percentage points.
- **Breach**: a telemetry interval whose p95 reached the SLO. **Episodes** (to foresee) are the breaches of the
  round-robin run of the same case, the counterfactual without steering, so every breaker faces the same
  episodes; breach intervals less than a minute apart form one episode.
- **Opening**: a closed → open transition (for Envoy an ejection, for LiteLLM a cooldown). It is right (precision)
  when that backend breaches, in its own run or in the counterfactual, during the horizon (300 s) after it or is
  breaching already.
- **Recall**: episodes with an opening at most one horizon before their first breach interval, at the latest on
  it. **Lead time**: from the earliest such opening to the episode's start; 0 s means the breaker reacted to the
  breach's first telemetry.
- **changes/backend-h**: breaker state changes (any transition) per backend-hour of scored time: flapping."""

NEZHA_INTRO = """Each pod's recorded rows stream as one backend's telemetry, one per minute, through ACE's breaker and the
reactive one (`Window`, `features.compute`, `load_and_validate`, `policy.Breaker`, the same code as above).
Pods differ a hundredfold in latency, so each pod's latency is scaled so that the breaker's 300 ms threshold
stands for twice the pod's fault-free p99 on the tuning day (2022-08-22), and its load is divided by its median
load of that day. ACE's model is trained with the trainer's code on the tuning day's scaled telemetry. Reported:
2022-08-23. **These faults arrive without warning: this section measures reaction, not foresight.**"""

NAB_INTRO = """One backend, 5-minute samples, with NAB's three labelled windows (only one of them a latency rise). The
series has no load, so load is held at 1; the window is widened to 25 min (6 samples) so the breakers leave
cold start; ACE uses the Nezha model. With 5-minute samples the 5-minute horizon is a single sample: this too
shows reaction."""

ROUTERS_TEXT = """Each at its documented defaults; `bench/foresight/routers.py`, `peers.py` and `oracles.py` say how each
is modelled and cite its source:
- round robin; least outstanding requests (random tie-break); peak-EWMA with power of two choices
  (Finagle/Linkerd: 10 s decay, 30 ms prior, cost = estimate x (outstanding + 1));
- Envoy outlier detection (5 consecutive failures, 10 s interval, 30 s base ejection times the ejection count,
  at most 10% of hosts but at least one) over Envoy's least-request (two random choices); success-rate
  detection needs 5 hosts and the pool has 4, so it never runs;
- LiteLLM latency-based routing (mean of the last 10 latencies, a timeout recorded as 1,000 s, untried backends
  at 0; 5 s cooldown when more than half of at least 5 requests in a minute failed);
- C3 replica ranking (NSDI'15, as Elasticsearch implements it: EWMAs of response time, server-reported service
  time and queue, alpha 0.3, score R - 1/mu + q^3/mu with q = 1 + outstanding + reported queue; no rate control);
- shortest expected delay with estimated speeds (an EWMA of server-reported service time, no forecast);
- gRPC weighted round robin on ORCA load reports (A58: weight = qps / (utilisation + eps/qps x 1.0), out-of-band
  reports every 10 s, 10 s blackout, 3 min expiry, EDF scheduling);
- the reactive latency breaker: ACE's own table and policy run on the observed p95, as the router does when its
  predictor is down or its model is not yet proven; the same told the requests in flight. They are what the
  forecast adds to each placement, not routers a fleet runs today: no target is measured against them;
- ACE; ACE told the requests in flight per backend; ACE told how each request ended (see Setup);
- oracle shortest expected delay and central queue: see Setup; they cannot be built, they bound."""
