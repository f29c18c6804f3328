"""The router's collector and the risk board, over a real routing table."""

import numpy as np
from prometheus_client import CollectorRegistry

from ace.v1 import router_pb2
from services.router import board, risk
from services.router.metrics import DecisionMetrics, RouterCollector, labelled
from services.router.policy import Settings
from services.router.table import RoutingTable, Update
from services.router.transitions import TransitionLog
from tests import scrape

S = Settings(threshold_ms=300, warm_after_s=40, open_after_s=0)


def fleet() -> tuple[RoutingTable, TransitionLog]:
    table = RoutingTable(S)
    log = TransitionLog(table, clock=lambda: 5000.0)
    updates = [
        Update("calm", as_of=100, points=30, observed_ms=90, predicted_ms=110, features=np.zeros(11), covered_s=290),
        Update("hot", as_of=100, points=30, observed_ms=180, predicted_ms=420, features=np.zeros(11), covered_s=290),
        Update("new", as_of=100, points=2, observed_ms=50, predicted_ms=None, covered_s=10),
    ]
    table.apply(updates)
    log.applied([u.backend_id for u in updates])
    return table, log


def test_the_collector_reads_breakers_and_risks_in_base_units():
    table, log = fleet()
    registry = CollectorRegistry()
    registry.register(RouterCollector(table, log))
    found = scrape.collected(registry)
    assert scrape.value(found, "ace_router_breaker_state", backend_id="hot") == 2
    assert scrape.value(found, "ace_router_breaker_state", backend_id="calm") == 0
    assert scrape.value(found, "ace_router_backend_risk_seconds", backend_id="hot") == 0.42
    assert scrape.value(found, "ace_router_backend_risk_seconds", backend_id="new") is None  # cold: no figure
    assert scrape.value(found, "ace_router_backend_observed_latency_seconds", backend_id="new") == 0.05
    assert scrape.value(found, "ace_router_backends", state="open") == 1
    assert scrape.value(found, "ace_router_backends_at_risk") == 1
    assert scrape.value(found, "ace_router_cold_backends") == 1
    assert scrape.value(found, "ace_router_threshold_seconds") == 0.3
    assert scrape.value(found, "ace_router_breaker_transitions_total", from_state="closed", to_state="open") == 1
    assert scrape.value(found, "ace_router_breaker_transitions_total", from_state="half_open", to_state="closed") == 0
    assert scrape.value(found, "ace_router_breaker_lead_seconds_count") == 0
    assert scrape.value(found, "ace_router_table_last_update_timestamp_seconds") == 5000.0


def test_past_the_cap_the_riskiest_backends_keep_their_series():
    table, _ = fleet()
    assert [e.backend_id for e in labelled(table.entries(), cap=1)] == ["hot"]
    assert [e.backend_id for e in labelled(table.entries(), cap=2)] == ["calm", "hot"]


def test_decisions_are_counted_by_action_and_basis_from_the_answer():
    registry = CollectorRegistry()
    metrics = DecisionMetrics(registry)
    metrics.decided(router_pb2.Decision(action=router_pb2.REROUTE, basis=router_pb2.FORECAST))
    metrics.decided(router_pb2.Decision(action=router_pb2.REROUTE, basis=router_pb2.FORECAST))
    metrics.reported(
        router_pb2.ReportOutcomesResponse(receipts=[router_pb2.OutcomeReceipt(status=router_pb2.REJECTED)])
    )
    found = scrape.collected(registry)
    assert scrape.value(found, "ace_router_decisions_total", action="reroute", basis="forecast") == 2
    assert scrape.value(found, "ace_router_decisions_total", action="primary", basis="forecast") == 0
    assert scrape.value(found, "ace_router_outcomes_total", status="rejected") == 1


def render(table: RoutingTable, log: TransitionLog, scores: list[board.VersionScore] | None) -> str:
    entries = table.entries()
    view = board.Board(
        risks=risk.report(entries, table.model, table.settings),
        since={e.backend_id: e.breaker.since for e in entries},
        leads={e.backend_id: lead for e in entries if (lead := log.lead(e.backend_id))},
        transitions=log.recent(),
        settings=table.settings,
        horizon_s=300,
        as_of=table.as_of,
        model_version="v7",
        predictor_available=True,
        feature_store_connected=True,
        scores=scores,
        rendered_at=0,
    )
    return board.render(view).decode()


def test_the_board_answers_the_operators_question():
    table, log = fleet()
    page = render(table, log, [board.VersionScore("v7", "active", 120, 42.0, 0.21)])
    assert "1 of 3 backends forecast at or over 300 ms within 300 s; 1 breakers open" in page
    assert page.index('data-backend="hot"') < page.index('data-backend="calm"')  # riskiest first
    assert '<tr class="open risk" data-backend="hot">' in page
    assert "420 ms" in page and "open 0 s, no breach yet" in page
    assert "<td>v7</td><td>active</td><td>120</td><td>42 ms</td><td>0.210</td>" in page
    assert "closed → open" in page
    assert 'http-equiv=refresh content="5"' in page


def test_the_board_escapes_backend_ids_and_says_when_the_predictor_is_silent():
    table = RoutingTable(S)
    table.apply([Update("<script>x</script>", as_of=1, points=30, observed_ms=10, predicted_ms=20, covered_s=290)])
    page = render(table, TransitionLog(table), None)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "Measured error: the predictor did not answer." in page


def test_the_board_says_when_a_breach_under_way_overrode_the_forecast():
    table = RoutingTable(S)
    table.apply([Update("slow", as_of=1, points=30, observed_ms=460, predicted_ms=150, covered_s=290)])
    page = render(table, TransitionLog(table), None)
    assert "460 ms (observed, over its forecast of 150 ms)" in page
