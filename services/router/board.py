"""The risk board: one server-rendered HTML page that answers the operator's
question, "what capacity risks are we taking in the next horizon?", at a
glance. No script: the browser reloads it every REFRESH_S seconds. Built
from plain values, so it renders the same in a test as in the router."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.router.policy import Basis, Settings, State
from services.router.risk import Risk
from services.router.transitions import Lead, Transition

REFRESH_S = 5
STATE_WORDS = {State.CLOSED: "closed", State.HALF_OPEN: "half-open", State.OPEN: "open"}


@dataclass(frozen=True)
class VersionScore:
    """A model version's measured error, from the predictor's health."""

    version: str
    role: str  # active, candidate or previous
    labels: int
    mae_ms: float
    log_mae: float


@dataclass(frozen=True)
class Board:
    risks: Sequence[Risk]  # riskiest first, as risk.report orders them
    since: dict[str, float]  # backend -> event time its breaker entered its state
    leads: dict[str, Lead]
    transitions: Sequence[Transition]  # newest first
    settings: Settings
    horizon_s: float
    as_of: float  # event time of the newest telemetry; 0 before any
    model_version: str  # "" without a model
    predictor_available: bool
    feature_store_connected: bool
    # None when the predictor could not be asked; empty when it runs no loop.
    scores: Sequence[VersionScore] | None
    rendered_at: float  # wall clock
    # The predictor's trust verdict on the model (RoutingTable.model_proven).
    model_proven: bool = True
    trust_reason: str = ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _time(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _ago(board: Board, at: float) -> str:
    if at <= 0 or board.as_of <= 0:
        return "—"
    return f"{max(0.0, board.as_of - at):,.0f} s"


def _lead(board: Board, r: Risk) -> str:
    lead = board.leads.get(r.backend_id)
    if lead is None:
        return "—"
    if lead.seconds is None:
        return f"open {_ago(board, lead.opened_at)}, no breach yet"
    if lead.seconds == 0:
        return "0 s (opened on the breach)"
    return f"{lead.seconds:,.0f} s before the breach"


def _row(board: Board, r: Risk) -> str:
    state = STATE_WORDS[r.state]
    cold = r.basis is Basis.COLD_START
    figure = None if cold else r.predicted_ms
    if cold:
        forecast = "cold"
    elif r.basis is Basis.FORECAST:
        forecast = _ms(figure)
    elif r.basis is Basis.MODEL_UNPROVEN:
        forecast = f"{_ms(figure)} (observed; forecast {_ms(r.forecast_ms)} in shadow)"
    elif r.basis is Basis.OBSERVED_OVER_FORECAST:
        forecast = f"{_ms(figure)} (observed, over its forecast of {_ms(r.forecast_ms)})"
    else:
        forecast = f"{_ms(figure)} (observed)"
    headroom = "—" if cold else _ms(r.headroom_ms)
    risky = "risk" if r.breaches else "ok"
    drivers = ", ".join(f"{d.feature} z={d.z_score:+.1f}" for d in r.drivers) or "—"
    return (
        f'<tr class="{state} {risky}" data-backend="{_e(r.backend_id)}">'
        f"<td>{_e(r.backend_id)}</td><td class=state>{state}</td><td>{_ago(board, board.since.get(r.backend_id, 0))}</td>"
        f"<td>{_ms(r.observed_ms)}</td><td>{_e(forecast)}</td><td>{headroom}</td>"
        f"<td>{_e(_lead(board, r))}</td><td>{_e(drivers)}</td></tr>"
    )


def _model(board: Board) -> str:
    if not board.model_version:
        why = "no model active" if board.predictor_available else "predictor unreachable or without a model"
        return f"<p class=warn>{why}: breakers run on observed latency.</p>"
    lines = [f"<p>Active model <b>{_e(board.model_version)}</b>.</p>"]
    if not board.model_proven:
        lines.append(
            "<p class=warn>Not yet proven on this fleet's labels: breakers run on observed latency, the forecast "
            f"in shadow ({_e(board.trust_reason)}).</p>"
        )
    if board.scores is None:
        lines.append("<p>Measured error: the predictor did not answer.</p>")
    elif not board.scores:
        lines.append("<p>Measured error: the predictor runs no learning loop.</p>")
    else:
        rows = "".join(
            f"<tr><td>{_e(s.version)}</td><td>{_e(s.role)}</td><td>{s.labels:,}</td>"
            f"<td>{_ms(s.mae_ms) if s.labels else '—'}</td><td>{f'{s.log_mae:.3f}' if s.labels else '—'}</td></tr>"
            for s in board.scores
        )
        lines.append(
            "<table id=models><tr><th>version</th><th>role</th><th>labels</th><th>MAE</th><th>log error</th></tr>"
            f"{rows}</table>"
        )
    return "".join(lines)


def _transitions(board: Board) -> str:
    if not board.transitions:
        return "<p>No breaker has changed state since the router started.</p>"
    rows = "".join(
        f"<tr><td>{_time(t.at)}</td><td>{_e(t.backend_id)}</td>"
        f"<td>{STATE_WORDS[t.from_state]} → {STATE_WORDS[t.to_state]}</td>"
        f"<td>{_ms(t.risk_ms)} ({t.basis.value.lower().replace('_', ' ')})</td></tr>"
        for t in board.transitions
    )
    return f"<table id=transitions><tr><th>event time</th><th>backend</th><th>change</th><th>on</th></tr>{rows}</table>"


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; text-align: left; border-bottom: 1px solid #ddd; }
td { white-space: nowrap; }
th { background: #f3f3f3; } tr.open td.state { background: #f8c4c4; font-weight: bold; }
tr.half-open td.state { background: #fbe3a8; } tr.closed td.state { background: #cdebcf; }
tr.risk td:nth-child(5) { color: #b00; font-weight: bold; } .warn { color: #b00; } .meta { color: #666; }
"""


def render(board: Board) -> bytes:
    at_risk = sum(r.breaches for r in board.risks)
    opened = sum(r.state is State.OPEN for r in board.risks)
    links = [
        "feature store " + ("connected" if board.feature_store_connected else "<b class=warn>disconnected</b>"),
        "predictor " + ("available" if board.predictor_available else "<b class=warn>unavailable</b>"),
    ]
    headline = (
        f"{at_risk} of {len(board.risks)} backends forecast at or over {board.settings.threshold_ms:,.0f} ms "
        f"within {board.horizon_s:,.0f} s; {opened} breakers open"
    )
    rows = "".join(_row(board, r) for r in board.risks) or "<tr><td colspan=8>No telemetry yet.</td></tr>"
    page = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content="{REFRESH_S}">
<title>ACE risk board</title><style>{STYLE}</style></head><body>
<h1>ACE risk board</h1>
<p id=headline><b>{_e(headline)}</b></p>
<p class=meta>Telemetry as of {_time(board.as_of)}; rendered {_time(board.rendered_at)}; {"; ".join(links)}.
Refreshes every {REFRESH_S} s. <a href="/metrics">metrics</a></p>
<h2>Backends, riskiest first</h2>
<table id=backends><tr><th>backend</th><th>breaker</th><th>for</th><th>latency now</th>
<th>worst forecast, next {board.horizon_s:,.0f} s</th><th>headroom</th><th>lead</th><th>drivers</th></tr>
{rows}</table>
<h2>Model</h2>
{_model(board)}
<h2>Recent breaker transitions, latest applied first</h2>
{_transitions(board)}
</body></html>
"""
    return page.encode()
