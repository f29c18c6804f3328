"""The metric names a PromQL expression reads, and the sample names a
service's metric families export, so a test can check that every query in
deploy/ asks for something a service serves. A small lexer, not a parser:
it drops strings, label matchers, ranges and label lists, then keeps the
identifiers that are neither functions nor keywords."""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
# Aggregations may stand apart from their parenthesis: `sum by (le) (...)`.
AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values"}
)
# Series Prometheus itself makes: target health and the alerts it evaluates.
BUILT_IN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"})
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "info": ("_info",),
    "gauge": ("",),
    "unknown": ("",),
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GRAFANA = re.compile(r"\$\{[^}]*\}|\$\w+")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    text = _GRAFANA.sub("1m", _STRING.sub('""', expr))
    text = _RANGE.sub("", _BRACES.sub("", text))
    text = _LABEL_LIST.sub(r"\1", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in KEYWORDS or name in AGGREGATIONS:
            continue
        names.add(name)
    return names


def exported(families: dict[str, str]) -> set[str]:
    """The sample names a /metrics page's families (name -> type) serve."""
    names = set(BUILT_IN)
    for family, kind in families.items():
        names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names
