"""The answer to "what capacity risks are we taking in the next horizon?",
from the routing table and what the active model says about its features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.router.policy import Basis, Settings, State
from services.router.table import Entry, ModelFacts

MAX_DRIVERS = 3


@dataclass(frozen=True)
class Driver:
    feature: str
    value: float
    z_score: float
    weight: float


@dataclass(frozen=True)
class Risk:
    backend_id: str
    predicted_ms: float
    observed_ms: float
    breaches: bool
    headroom_ms: float
    state: State
    basis: Basis
    drivers: tuple[Driver, ...]
    # The model's forecast, also while it runs in shadow; None without one.
    forecast_ms: float | None = None


def drivers(entry: Entry, model: ModelFacts) -> tuple[Driver, ...]:
    """The features that most set this backend apart from what the model was
    trained on: importance x |z-score|, strongest first. Empty when the model
    did not ship its feature statistics."""
    values = entry.features
    n = len(model.feature_names)
    if values is None or n == 0 or len(values) != n or len(model.means) != n or len(model.stds) != n:
        return ()
    found = []
    for i, name in enumerate(model.feature_names):
        std = model.stds[i]
        if std <= 0:
            continue
        z = (float(values[i]) - model.means[i]) / std
        weight = model.importances.get(name, 0.0) * abs(z)
        found.append(Driver(name, float(values[i]), z, weight))
    found.sort(key=lambda d: d.weight, reverse=True)
    return tuple(found[:MAX_DRIVERS])


def report(entries: Sequence[Entry], model: ModelFacts, settings: Settings) -> list[Risk]:
    """One risk per backend, riskiest first; cold backends (no figure) last."""
    risks = []
    for e in entries:
        figure = e.risk_ms
        predicted = figure if figure is not None else 0.0
        risks.append(
            Risk(
                backend_id=e.backend_id,
                predicted_ms=predicted,
                observed_ms=e.observed_ms,
                breaches=figure is not None and figure >= settings.threshold_ms,
                headroom_ms=settings.threshold_ms - predicted,
                state=e.breaker.state,
                basis=e.basis,
                drivers=drivers(e, model) if e.basis is Basis.FORECAST else (),
                forecast_ms=e.predicted_ms if figure is not None else None,
            )
        )
    risks.sort(key=lambda r: (r.basis is Basis.COLD_START, -r.predicted_ms, r.backend_id))
    return risks
