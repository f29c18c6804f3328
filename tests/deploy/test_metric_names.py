"""Every metric the alert rules and the Grafana dashboard query is one a
service exports: read from the four real services' /metrics pages, so a
renamed metric fails here, not on an operator's empty panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import scrape
from tests.deploy import promql
from tests.e2e.conftest import Fleet

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "ace-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "ace-dashboard.json"
OPERATIONS = DEPLOY.parent / "docs" / "operations.md"


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for panel in _panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel.get("targets", []):
            yield f"{panel['title']} / {target['refId']}", target["expr"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (action) (rate(ace_router_decisions_total{basis="forecast"}[5m]))', {"ace_router_decisions_total"}),
        ("a_seconds >= ignoring(backend_id) group_left b_seconds", {"a_seconds", "b_seconds"}),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ('time() - last_timestamp_seconds > 120 and on() up{job="a b"} offset 5m', {"last_timestamp_seconds", "up"}),
    ],
)
def test_the_names_of_a_query_are_found(expr, names):
    assert promql.metric_names(expr) == names


def test_the_dashboard_and_the_rules_query_something():
    assert len(list(dashboard_queries())) >= 20 and len(list(rule_queries())) >= 10


def test_every_queried_metric_is_exported_by_a_service(fleet: Fleet) -> None:
    families: dict[str, str] = {}
    for server in fleet.servers.values():
        families.update(scrape.families(server.metrics_port or 0))
    served = promql.exported(families)
    missing = {
        f"{where}: {name}"
        for where, expr in [*rule_queries(), *dashboard_queries()]
        for name in promql.metric_names(expr)
        if name not in served
    }
    assert not missing, "queried but exported by no service:\n" + "\n".join(sorted(missing))
    documented = set(re.findall(r"`((?:ace|grpc_server)_[a-z_]+)`", OPERATIONS.read_text()))
    assert len(documented) >= 40
    undocumented = {name for name in documented if name not in served and name not in families}
    assert not undocumented, f"docs/operations.md names metrics no service exports: {sorted(undocumented)}"
