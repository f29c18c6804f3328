"""Reading a service's /metrics as Prometheus would: over HTTP, parsed by
prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def text(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


def parse(exposition: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def samples(port: int) -> Samples:
    return parse(text(port))


def collected(registry: CollectorRegistry) -> Samples:
    """What a registry would serve, without a server."""
    return parse(generate_latest(registry).decode())


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def families(port: int) -> dict[str, str]:
    """Every metric family the endpoint declares, with its type, samples or not."""
    return {f.name: f.type for f in text_string_to_metric_families(text(port))}
