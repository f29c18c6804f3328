"""What the command line prints: the services' answers as tables a person
reads. Plain functions of the response messages, no gRPC."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ace.v1 import predictor_pb2, router_pb2
from services.router import wire
from services.router.policy import WEIGHTED_CYCLE, choose, weighted

STATES = {router_pb2.CLOSED: "closed", router_pb2.OPEN: "OPEN", router_pb2.HALF_OPEN: "half-open"}
BASES = {
    router_pb2.FORECAST: "forecast",
    router_pb2.OBSERVED_LATENCY: "observed",
    router_pb2.COLD_START: "cold",
    router_pb2.NO_TELEMETRY: "no telemetry",
    router_pb2.MODEL_UNPROVEN: "observed, model unproven",
    router_pb2.OBSERVED_OVER_FORECAST: "observed, over the forecast",
}
ROLES = {predictor_pb2.ACTIVE: "active", predictor_pb2.CANDIDATE: "candidate", predictor_pb2.PREVIOUS: "previous"}


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers line up on the right."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = cell[:1].isdigit() or (cell[:1] == "-" and cell[1:2].isdigit())
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def when(ts: Timestamp) -> str:
    if ts.seconds == 0 and ts.nanos == 0:
        return "-"
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ms(value: float) -> str:
    return f"{value:,.0f} ms"


def risk(report: router_pb2.RiskReport) -> str:
    at_risk = report.backends_at_risk
    model = report.model_version or "none (breakers run on observed latency)"
    if report.model_version and not report.model_proven:
        model += f", not yet proven on this fleet: breakers run on observed latency ({report.trust_reason})"
    lines = [
        f"{at_risk} of {len(report.backends)} backends forecast at or over {ms(report.threshold_ms)} "
        f"in the next {report.horizon_s:,.0f} s",
        f"model {model}; telemetry as of {when(report.as_of)}",
        "",
    ]
    rows = []
    for b in report.backends:
        cold = b.basis == router_pb2.COLD_START
        rows.append(
            [
                b.backend_id,
                STATES.get(b.state, "?"),
                "-" if cold else ms(b.predicted_latency_ms),
                ms(b.observed_latency_ms),
                "-" if cold else ms(b.headroom_ms),
                "BREACH" if b.breaches else "",
                BASES.get(b.basis, "?"),
                ", ".join(f"{d.feature} z={d.z_score:+.1f}" for d in b.drivers),
            ]
        )
    header = ["BACKEND", "BREAKER", "FORECAST", "LATENCY NOW", "HEADROOM", "", "ON", "DRIVERS"]
    lines.append(table(header, rows) if rows else "no telemetry yet")
    return "\n".join(lines)


def shares(t: router_pb2.RoutingTable) -> dict[str, float] | None:
    """Each backend's share of the decisions that name no candidate and give
    no in-flight counts, as the router's own policy would make them over one
    cycle of its weighted rotation; None when it places by round robin."""
    candidates = [wire.candidate(r) for r in t.backends]
    settings = wire.settings(t)
    if not weighted(candidates, settings):
        return None
    picks = Counter(choose(candidates, turn, settings).backend_id for turn in range(WEIGHTED_CYCLE))
    return {c.backend_id: picks[c.backend_id] / WEIGHTED_CYCLE for c in candidates}


def routing_table(t: router_pb2.RoutingTable) -> str:
    links = [
        "feature store " + ("connected" if t.feature_store_connected else "DISCONNECTED"),
        "predictor " + ("available" if t.predictor_available else "UNAVAILABLE"),
    ]
    lines = [
        f"threshold {ms(t.threshold_ms)} over {t.horizon_s:,.0f} s; model {t.model_version or 'none'}; {', '.join(links)}",
        "",
    ]
    share = shares(t)
    rows = [
        [
            r.backend_id,
            STATES.get(r.state, "?"),
            when(r.state_since),
            ms(r.risk_ms) if r.HasField("risk_ms") else "-",
            ms(r.observed_latency_ms),
            f"{r.capacity_rps:,.1f}" if r.HasField("capacity_rps") else "-",
            "-" if share is None else f"{share[r.backend_id]:.0%}",
            str(r.points_in_window),
            BASES.get(r.basis, "?"),
            when(r.as_of),
        ]
        for r in t.backends
    ]
    header = [
        "BACKEND",
        "BREAKER",
        "SINCE (EVENT TIME)",
        "RISK",
        "LATENCY NOW",
        "CAPACITY RPS",
        "SHARE",
        "POINTS",
        "ON",
        "AS OF",
    ]
    lines.append(table(header, rows) if rows else "no backends yet")
    return "\n".join(lines)


# Whether a version has seen this fleet: a synthetic one is what a first
# deploy serves until the trainer has learnt the fleet.
LEARNT_FROM = {
    predictor_pb2.HISTORY_SOURCE_SYNTHETIC: "synthetic",
    predictor_pb2.HISTORY_SOURCE_CSV: "csv",
    predictor_pb2.HISTORY_SOURCE_FLEET: "fleet",
}


def models(listed: predictor_pb2.ListModelsResponse, health: predictor_pb2.ModelHealth | None) -> str:
    live = {v.version: v for v in health.versions} if health is not None and health.enabled else {}
    rows = []
    for info in listed.models:
        m = info.metadata
        scored = live.get(m.version)
        held_out = m.metrics.get("mae_ms")
        rows.append(
            [
                m.version,
                ROLES.get(info.role, "stored"),
                when(info.published_at),
                ms(held_out) if held_out is not None else "-",
                ms(scored.mae_ms) if scored is not None and scored.labels else "-",
                f"{scored.log_mae:.3f}" if scored is not None and scored.labels else "-",
                str(scored.labels) if scored is not None else "-",
                LEARNT_FROM.get(m.history_source, "-"),
                ("proven" if scored.proven else "unproven") if scored is not None else "-",
            ]
        )
    header = [
        "VERSION",
        "ROLE",
        "PUBLISHED",
        "HELD-OUT MAE",
        "LIVE MAE",
        "LIVE LOG ERROR",
        "LABELS",
        "LEARNT FROM",
        "TRUST",
    ]
    out = [table(header, rows) if rows else "no model versions stored"]
    if health is None:
        out.append("\nlive scores: the predictor did not answer GetModelHealth")
    elif not health.enabled:
        out.append("\nlive scores: off (the predictor runs without --feature-store-addr)")
    else:
        d = health.error_drift
        out.append(
            f"\nlive scores over the last {health.window_s:,.0f} s of labels; error drift statistic "
            f"{d.statistic:.2f} of {d.threshold:g} (fired {d.fires} times)"
        )
        if health.HasField("last_gate"):
            out.append(f"last gate decision: {health.last_gate.reason}")
    return "\n".join(out)


def explain(r: router_pb2.DecisionRecord) -> str:
    figure = ms(r.risk_ms) if r.HasField("risk_ms") else "none (cold or unknown)"
    if r.model_version:
        figure += f", from model {r.model_version}"
    fields = [
        ("its risk figure then", f"{figure}; threshold {ms(r.threshold_ms)}"),
        ("telemetry as of", when(r.as_of)),
        ("latency reported", ms(r.latency_ms) if r.HasField("latency_ms") else "not yet"),
        ("quality reported", f"{r.quality:.2f}" if r.HasField("quality") else "not yet"),
    ]
    if r.HasField("backend_now"):
        b = r.backend_now
        risk_now = ms(b.risk_ms) if b.HasField("risk_ms") else "-"
        now = f"breaker {STATES.get(b.state, '?')}, risk {risk_now}, latency {ms(b.observed_latency_ms)}"
    else:
        now = "no longer in the routing table"
    fields.append((f"{r.backend_id} now", now))
    width = max(len(label) for label, _ in fields)
    lines = [f"decision {r.decision_id}: sent to {r.backend_id} at {when(r.decided_at)}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in fields]
    return "\n".join(lines)
