"""The predictor's metrics: swaps as the registry reports them, and the
versions a collector reads at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.predictor.metrics import ModelCollector, PredictorMetrics
from services.predictor.registry import Registry
from tests import scrape
from tests.predictor.test_shadows import publish


def test_every_swap_of_the_active_version_is_told_with_its_kind(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    swaps: list[str] = []
    reg.on_swap = lambda kind, seconds: swaps.append(kind) if seconds >= 0 else None
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0, shadow=True)  # a candidate: no swap
    assert reg.promote("v2", "better")
    assert reg.restore_previous("v2", "worse after all")
    reg.rollback("v2")
    assert swaps == ["publish", "promotion", "rollback", "operator_rollback"]


def test_swaps_versions_and_the_missing_loop_are_exported(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    prometheus = CollectorRegistry()
    metrics = PredictorMetrics(prometheus)
    reg.on_swap = metrics.swapped
    prometheus.register(ModelCollector(reg, loop=None))
    assert scrape.value(scrape.collected(prometheus), "ace_predictor_model_loaded") == 0
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0, shadow=True)
    reg.promote("v2", "better")
    reg.restore_previous("v2", "worse")
    found = scrape.collected(prometheus)
    assert scrape.value(found, "ace_predictor_model_loaded") == 1
    assert scrape.value(found, "ace_predictor_active_model_info", version="v1") == 1
    assert scrape.value(found, "ace_predictor_promotions_total") == 1
    assert scrape.value(found, "ace_predictor_rollbacks_total", trigger="gate") == 1
    assert scrape.value(found, "ace_predictor_rollbacks_total", trigger="operator") == 0
    assert scrape.value(found, "ace_predictor_model_swap_seconds_count", kind="publish") == 1
    # Without the learning loop its families are declared, and empty.
    families = {f.name for f in text_string_to_metric_families(generate_latest(prometheus).decode())}
    assert "ace_predictor_forecast_error_seconds" in families
    assert not any(name == "ace_predictor_forecast_error_seconds" for name, _ in found)
