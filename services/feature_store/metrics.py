"""The feature store's Prometheus metrics: points accepted and rejected
(counted as Ingest answers), and what the store holds (read from it at
scrape time, so ingesting pays nothing for them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.metrics import MAX_LABELLED_BACKENDS
from services.feature_store.store import Rejection, Store

# A rejection's reason label: the field its message names, or what about the
# store refused it. A closed set, so the label stays bounded.
FIELDS = ("backend_id", "observed_at", "load", "latency_ms", "error_rate")
TOO_OLD = "too_old"
BACKEND_CAP = "backend_cap"
OTHER = "other"
REASONS = (*FIELDS, TOO_OLD, BACKEND_CAP, OTHER)


def reason_label(reason: str) -> str:
    if reason.startswith("observed_at: older than the window"):
        return TOO_OLD
    if reason.startswith("backend_id: backend cap"):
        return BACKEND_CAP
    name = reason.partition(":")[0]
    return name if name in FIELDS else OTHER


class IngestMetrics:
    """Counts what Ingest and IngestStream stored and refused."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._accepted = Counter("ace_feature_store_points_accepted", "Telemetry points stored.", registry=registry)
        rejected = Counter(
            "ace_feature_store_points_rejected",
            "Telemetry points refused, by the field at fault or what about the store refused them "
            "(too_old: older than the backend's window; backend_cap: a new backend past --max-backends).",
            ["reason"],
            registry=registry,
        )
        self._rejected = {reason: rejected.labels(reason) for reason in REASONS}
        self._last_accepted = Gauge(
            "ace_feature_store_last_accepted_timestamp_seconds",
            "Wall-clock time the store last stored a point; 0 before the first.",
            registry=registry,
        )

    def ingested(self, accepted: int, rejected: Iterable[Rejection]) -> None:
        if accepted:
            self._accepted.inc(accepted)
            self._last_accepted.set(self._clock())
        for r in rejected:
            self._rejected[reason_label(r.reason)].inc()


class StoreCollector(Collector):
    """What the store holds, read at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fills = self._store.window_fill()
        capacity = self._store.limits.max_points
        yield GaugeMetricFamily("ace_feature_store_backends", "Backends the store holds a window for.", len(fills))
        yield GaugeMetricFamily(
            "ace_feature_store_max_backends", "The backend cap (--max-backends).", self._store.max_backends
        )
        yield GaugeMetricFamily(
            "ace_feature_store_window_points", "Points held in all windows together.", sum(n for _, n in fills)
        )
        per_backend = GaugeMetricFamily(
            "ace_feature_store_window_fill_ratio",
            f"Points in a backend's window over the most it holds (--window-max-points); the "
            f"{MAX_LABELLED_BACKENDS} emptiest backends when there are more.",
            labels=["backend_id"],
        )
        emptiest = sorted(fills, key=lambda f: (f[1], f[0]))[:MAX_LABELLED_BACKENDS]
        for backend_id, points in sorted(emptiest):
            per_backend.add_metric([backend_id], points / capacity)
        yield per_backend
        yield GaugeMetricFamily(
            "ace_feature_store_watch_subscribers",
            "WatchFeatures streams open now (routers and predictors following the store).",
            self._store.watchers,
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
