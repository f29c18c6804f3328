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

from bench.foresight import faults, realtel, runner, score
from bench.foresight.runner import CaseResult, Timeline
from services.trainer.train import TrainedModel

STATE_LEVEL = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}
DPI = 72


@dataclass(frozen=True)
class Inputs:
    cfg: runner.Config
    tuned: runner.Config  # the settings of the tuned ACE row
    names: tuple[str, ...]
    results: list[CaseResult]
    tuning_seeds: tuple[int, ...]
    settings_seeds: tuple[int, ...]
    reported_seeds: tuple[int, ...]
    sources: tuple[str, ...]
    fault_classes: tuple[str, ...]
    ace: TrainedModel
    nowcast: TrainedModel
    training_runs: int
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


def _num(v: float, digits: int = 2) -> str:
    return "—" if math.isnan(v) else f"{v:.{digits}f}"


def _s(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.0f} s"


def everything(_: CaseResult) -> bool:
    return True


def _breaker_cells(b: score.Breakers | None, changes: score.Breakers | None) -> str:
    """recall | precision | lead p50 | lead p10 | false drains | changes/backend-h,
    the last from `changes` (the quiet class in the headline)."""
    if b is None or changes is None:
        return "| — | — | — | — | — | — |"
    return (
        f"| {_num(b.recall)} | {_num(b.precision)} | {_s(b.lead(50))} | {_s(b.lead(10))} | {b.false_drains} "
        f"| {_num(changes.changes_per_backend_hour, 1)} |"
    )


def headline(inp: Inputs) -> str:
    """The table the README quotes: every source, fault class and reported seed."""
    quiet = [r for r in inp.results if r.case.fault == "quiet"]
    rows = [
        "| router | p50 ms | p95 ms | p99 ms | over SLO | failed | breach recall | precision | lead p50 | lead p10 "
        "| false drains | changes/backend-h, quiet | drained, quiet |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in inp.names:
        u = _users(inp.results, name, everything)
        bq = _breakers(quiet, name, everything)
        tail = _breaker_cells(_breakers(inp.results, name, everything), bq)
        tail += f" {_pct(bq.drained_share) if bq is not None else '—'} |"
        rows.append(
            f"| {name} | {_ms(u.percentile(50))} | {_ms(u.percentile(95))} | {_ms(u.percentile(99))} "
            f"| {_pct(u.over_share)} | {_pct(u.failed_share)} {tail}"
        )
    return "\n".join(rows)


def per_fault(inp: Inputs, fault: str) -> str:
    keep: Callable[[CaseResult], bool] = lambda r: r.case.fault == fault  # noqa: E731
    rows = [
        "| router | p99 ms | over SLO | failed | recall | precision | lead p50 | lead p10 | false drains "
        "| changes/backend-h |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in inp.names:
        u = _users(inp.results, name, keep)
        b = _breakers(inp.results, name, keep)
        tail = _breaker_cells(b, b)
        rows.append(f"| {name} | {_ms(u.percentile(99))} | {_pct(u.over_share)} | {_pct(u.failed_share)} {tail}")
    return "\n".join(rows)


def per_source(inp: Inputs) -> str:
    head = "| router | " + " | ".join(f"{s}: over SLO / p99 ms" for s in inp.sources) + " |"
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


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    ace: str
    met: bool
    gap: str


def targets(inp: Inputs, name: str) -> list[Target]:
    b = _breakers(inp.results, name, everything) or score.Breakers()
    u = _users(inp.results, name, everything)
    others = [n for n in inp.names if not n.startswith("ACE")]
    best_over = min(_users(inp.results, n, everything).over_share for n in others)
    best_over_name = min(others, key=lambda n: _users(inp.results, n, everything).over_share)
    best_p99 = min(_users(inp.results, n, everything).percentile(99) for n in others)
    best_p99_name = min(others, key=lambda n: _users(inp.results, n, everything).percentile(99))
    quiet = _breakers([r for r in inp.results if r.case.fault == "quiet"], name, everything) or score.Breakers()
    lead = b.lead(50)
    out = [
        Target(
            "breach recall",
            "≥ 0.9",
            _num(b.recall),
            b.recall >= 0.9,
            f"short by {0.9 - b.recall:.2f}" if b.recall < 0.9 else "",
        ),
        Target(
            "precision of openings",
            "≥ 0.8",
            _num(b.precision),
            b.precision >= 0.8,
            f"short by {0.8 - b.precision:.2f}" if b.precision < 0.8 else "",
        ),
        Target(
            "median lead time",
            "≥ 60 s",
            _s(lead),
            lead >= 60,
            f"short by {60 - lead:.0f} s" if lead < 60 else "",
        ),
        Target(
            "share of requests over the SLO",
            f"≤ 50% of the best non-ACE router ({best_over_name}, {_pct(best_over)}): ≤ {_pct(best_over / 2)}",
            _pct(u.over_share),
            u.over_share <= best_over / 2,
            f"{u.over_share / best_over:.1f}x the best" if best_over > 0 else "",
        ),
        Target(
            "p99 latency",
            f"lower than every other router (best: {best_p99_name}, {_ms(best_p99)} ms)",
            _ms(u.percentile(99)) + ("" if u.percentile(99) >= 4999 else " ms"),
            u.percentile(99) < best_p99,
            f"{u.percentile(99) - best_p99:,.0f} ms above the best" if u.percentile(99) >= best_p99 else "",
        ),
        Target(
            "state changes per backend-hour, quiet stretch",
            "≤ 1",
            _num(quiet.changes_per_backend_hour, 1),
            quiet.changes_per_backend_hour <= 1,
            (f"{quiet.changes_per_backend_hour - 1:.1f} too many; " if quiet.changes_per_backend_hour > 1 else "")
            + f"breakers not closed {_pct(quiet.drained_share)} of the quiet time",
        ),
    ]
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


def render(inp: Inputs, plots: list[tuple[str, str]]) -> str:
    cfg, pool = inp.cfg, inp.cfg.pool
    s = cfg.settings
    m, nm = inp.ace.metrics, inp.nowcast.metrics
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
        f"class x seed), every router on the same arrivals and faults.",
        "- **Traffic:** " + ", ".join(inp.sources) + ". Synthetic: Poisson arrivals at the rate of "
        "`services.common.synthetic.utilisation` (its cycle, drift and spikes). Traces: real arrival times and "
        "token counts, several copies shifted at random and thinned to the target rate; service time from "
        "tokens (prefill 5,000 tokens/s, decode 50 tokens/s), scaled to the pool's mean and clipped to 4x, so "
        "no request breaches the SLO on an idle backend.",
        "- **Fault classes:**",
        *[f"  - `{f}`: {faults.DESCRIPTIONS[f]}" for f in inp.fault_classes],
        f"- **Seeds.** Tuning: ACE's and the nowcast's models were trained on round-robin telemetry of seeds "
        f"{', '.join(map(str, inp.tuning_seeds))} ({inp.training_runs} runs); the tuned ACE row's settings were "
        f"chosen on seeds {', '.join(map(str, inp.settings_seeds))}. Reported: seeds "
        f"{', '.join(map(str, inp.reported_seeds))}, used for nothing else.",
        f"- **ACE** runs the project's code: `Window` and `features.compute` on each interval's telemetry, the "
        f"trainer's `dataset.build` and `train.train` for the forest, `load_and_validate` and onnxruntime to "
        f"forecast (once per interval for all backends), `policy.Breaker` and `policy.choose` to route. Settings: "
        f"threshold {s.threshold_ms:.0f} ms, hysteresis {s.hysteresis}, min open {s.min_open_s:.0f} s, recovery "
        f"{s.recovery_s:.0f} s, horizon {s.horizon_s:.0f} s (the documented defaults). The tuned row differs only "
        f'in its threshold: {inp.tuned.settings.threshold_ms:.0f} ms. The rows "in-flight given" are ACE when '
        f"the caller passes its requests in flight per backend (`DecideRequest.in_flight`, `RouterClient.pick`): "
        f"`choose` then places each request on the least-loaded backend, an open breaker counting "
        f"{s.open_penalty:.0f} requests more than it has; their tuned row's threshold is "
        f"{runner.IN_FLIGHT_TUNED_THRESHOLD_MS:.0f} ms.",
        f"- **ACE's model** on held-out tuning telemetry: MAE {m.mae_ms:.0f} ms (persistence "
        f"{m.persistence_mae_ms:.0f} ms), R² {m.r2:.2f}, breach precision / recall {m.breach_precision:.2f} / "
        f"{m.breach_recall:.2f}; {m.train_rows:,} training rows. Nowcast (horizon one interval): MAE "
        f"{nm.mae_ms:.0f} ms, R² {nm.r2:.2f}.",
        "",
        "## Headline (modelled latency)",
        "",
        "All traffic sources, fault classes and reported seeds together. Breaker figures (defined below) are for "
        "the routers that drain backends; changes/backend-h is counted in the quiet class.",
        "",
        headline(inp),
        "",
        "![p99 and SLO violations per router](foresight-routers.png)",
        "",
        "## Where ACE stands against the targets",
        "",
        "ACE at its documented defaults:",
        "",
        targets_table(inp, runner.ACE),
        "",
        f"ACE with the tuned threshold ({runner.ACE_TUNED}):",
        "",
        targets_table(inp, runner.ACE_TUNED),
        "",
        f"ACE placing by requests in flight, at the documented defaults ({runner.ACE_IN_FLIGHT}):",
        "",
        targets_table(inp, runner.ACE_IN_FLIGHT),
        "",
        f"ACE placing by requests in flight, with its tuned threshold ({runner.ACE_IN_FLIGHT_TUNED}):",
        "",
        targets_table(inp, runner.ACE_IN_FLIGHT_TUNED),
        "",
        FINDINGS,
        "",
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
        parts += [
            "## Real telemetry: Nezha OnlineBoutique",
            "",
            NEZHA_INTRO,
            "",
            nezha_section(inp.nezha),
            "",
        ]
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


DEFINITIONS = """- **over SLO**: requests whose latency exceeded the SLO, failures included; **failed**: requests that hit
  the timeout. Percentiles pool all scored requests (0.7% wide histogram bins; "timeout" means the percentile
  falls in the timeout bin).
- **Breach**: a telemetry interval whose p95 reached the SLO. **Episodes** (to foresee) are the breaches of the
  round-robin run of the same case, the counterfactual without steering, so every breaker faces the same
  episodes; breach intervals less than a minute apart form one episode.
- **Opening**: a closed → open transition (for Envoy an ejection, for LiteLLM a cooldown). It is right (precision)
  when that backend breaches, in its own run or in the counterfactual, during the horizon (300 s) after it or is
  breaching already. A **false drain** is an opening that is not right.
- **Recall**: episodes with an opening at most one horizon before their first breach interval, at the latest on
  it. **Lead time**: from the earliest such opening to the episode's start; 0 s means the breaker reacted to the
  breach's first telemetry.
- **changes/backend-h**: breaker state changes (any transition) per backend-hour of scored time. **drained**:
  the share of scored backend-time a breaker was not closed (for the routers that report breaker states each
  interval). Few changes and much drained time means breakers that opened and stayed open."""

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

ROUTERS_TEXT = """Each at its documented defaults (`bench/foresight/routers.py` says how each is modelled):
round robin; least outstanding requests (random tie-break); peak-EWMA with power of two choices (Finagle/Linkerd:
10 s decay, 30 ms prior, cost = estimate x (outstanding + 1)); Envoy outlier detection (5 consecutive failures,
10 s interval, 30 s base ejection times the ejection count, at most 10% of hosts but at least one) over Envoy's
least-request (two random choices); success-rate detection needs 5 hosts and the pool has 4, so it never runs;
LiteLLM latency-based routing (mean of the last 10 latencies, a timeout recorded as 1,000 s as LiteLLM does,
untried backends at 0; 5 s cooldown when more than half of at least 5 requests in a minute failed; LiteLLM's own
code keeps the first nine latencies and replaces only the tenth, the documented intent is modelled); the reactive
latency breaker (ACE's own breaker and choice, run on the observed p95, as the router does when its predictor is
down); the nowcast (ACE's pipeline with a horizon of one interval: it predicts the next interval's latency);
ACE (`Decide` without in-flight counts: round robin that skips open breakers, a drained backend's share spread
evenly over the eligible ones); ACE with its threshold tuned on the settings seeds; and ACE told the requests in
flight per backend, as a proxy knows them (least-loaded, an open breaker counting extra requests), at the
defaults and with its own tuned threshold."""

FINDINGS = """What the figures show, and the next steps.

1. **Placement decides most of what users see.** Round robin leaves queueing to chance: ACE at its defaults, placing
   by rotation (what `Decide` does when the request gives no in-flight counts), is far behind least outstanding
   requests. Told the requests in flight per backend, as a proxy knows them, `choose` places each request on the
   least-loaded backend; that is what the "in-flight given" rows measure, and they are at or below least outstanding
   on the share over the SLO and below every other router on p99. The margin is small, and its largest part is in
   the heterogeneous class, where ties in load go to the backend with the lower forecast.
2. **Draining removes capacity.** At this utilisation a drained backend's share lands on the rest. Excluding open
   backends outright (as the rotation does) sent every request to the one or two left once most breakers were
   open, and melted them; that is why an open backend, with in-flight counts, only counts `open_penalty` requests
   more than it has. With that, a breaker that is wrong costs little, and the breakers' figures say how often
   they are wrong: at the 300 ms default the forecast of the worst p95 over five minutes is above the threshold in
   this pool almost all the time, so the breakers flap and stay open while the users see what least outstanding
   gives them. The tuned threshold (2000 ms) opens on real trouble (precision 1.00, median lead ~3 min) but
   foresees only a quarter of the breach episodes.
3. **The targets on users are out of reach for placement alone.** Half of least outstanding's share over the SLO
   would mean beating it in the quiet class too, where nothing fails: those requests are long ones and moments
   when every slot of the pool is busy. No router that does not know request sizes or shed load avoids them.
4. **Next steps for the model.** The label (the worst p95 of the horizon) says "this backend will be slow", which
   a busy pool always is; what a breaker needs is "this backend will be slow when the others are not": a label
   and features relative to the pool's median. The model also learns from round-robin history, where no backend
   sits drained at zero load; retraining on the telemetry of ACE-routed runs (what the learning loop does in
   production) is the other step.
5. **LiteLLM's latency routing herds.** With no count of requests in flight, every request goes to the backend
   whose last ten latencies were lowest until its answers come back slow; a timeout then counts as 1,000 s and
   the backend is avoided for good. In a pool of capacity-limited backends this melts one backend after another.
   Its recall and lead times are an artefact of that: some backend is cooling down at almost every moment."""
