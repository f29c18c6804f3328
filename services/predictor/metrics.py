"""The predictor's Prometheus metrics: forecasts served and model swaps
(counted as they happen), and the versions, their measured error and the
drift detectors (read from the registry and the learning loop at scrape
time)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from services.predictor.loop import Health, Loop
from services.predictor.registry import Registry

SWAP_KINDS = ("publish", "promotion", "rollback", "operator_rollback")
# Loading and checking a version takes tens of milliseconds to seconds.
SWAP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PredictorMetrics:
    """Counts forecasts and swaps of the active version."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._predictions = Counter(
            "ace_predictor_predictions", "Forecasts served: one per backend row of a Predict call.", registry=registry
        )
        swap = Histogram(
            "ace_predictor_model_swap_seconds",
            "Seconds from a call that changes the active version (publish, promotion by the gate, rollback by the "
            "gate or an operator) to the swap, loading and checking the version included.",
            ["kind"],
            buckets=SWAP_BUCKETS,
            registry=registry,
        )
        self._swap = {kind: swap.labels(kind) for kind in SWAP_KINDS}
        self._promotions = Counter(
            "ace_predictor_promotions", "Candidates the gate promoted to active.", registry=registry
        )
        rollbacks = Counter(
            "ace_predictor_rollbacks",
            "Rollbacks of the active version: by the rollback rule (gate) or by an operator's Rollback call.",
            ["trigger"],
            registry=registry,
        )
        self._rollbacks = {"rollback": rollbacks.labels("gate"), "operator_rollback": rollbacks.labels("operator")}

    def predicted(self, rows: int) -> None:
        self._predictions.inc(rows)

    def swapped(self, kind: str, seconds: float) -> None:
        self._swap[kind].observe(seconds)
        if kind == "promotion":
            self._promotions.inc()
        elif kind in self._rollbacks:
            self._rollbacks[kind].inc()


class ModelCollector(Collector):
    """The versions loaded and, with the learning loop, how they score."""

    def __init__(self, registry: Registry, loop: Loop | None) -> None:
        self._registry = registry
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        active = self._registry.active
        yield GaugeMetricFamily(
            "ace_predictor_model_loaded",
            "1 when a version is active and Predict answers, else 0.",
            int(active is not None),
        )
        # Every family is declared even while empty (no model, no learning
        # loop), so a scraper and the metric-name check always see it.
        info = InfoMetricFamily("ace_predictor_active_model", "The active model version.", labels=["version"])
        trained = GaugeMetricFamily(
            "ace_predictor_active_model_trained_timestamp_seconds", "When the active version was trained.", labels=[]
        )
        horizon = GaugeMetricFamily(
            "ace_predictor_active_model_horizon_seconds",
            "The horizon the active version forecasts the worst latency over.",
            labels=[],
        )
        if active is not None:
            info.add_metric([active.version], {})
            trained.add_metric([], active.meta.trained_at)
            horizon.add_metric([], active.meta.horizon_s)
        yield from (info, trained, horizon)
        shadows = InfoMetricFamily(
            "ace_predictor_shadow_model",
            "Versions running in shadow beside the active one.",
            labels=["version", "role"],
        )
        for role, model in self._registry.shadows.models():
            shadows.add_metric([model.version, role.value.lower()], {})
        yield shadows
        yield from self._scores(self._loop.health() if self._loop is not None else None)

    def _scores(self, health: Health | None) -> Iterator[Metric]:
        """The learning loop's figures; empty families without the loop."""
        labels = ["version", "role"]
        mae = GaugeMetricFamily(
            "ace_predictor_forecast_error_seconds",
            "Mean absolute error of a version's forecasts of the horizon's worst latency, over the labels of the "
            "score window.",
            labels=labels,
        )
        log_mae = GaugeMetricFamily(
            "ace_predictor_forecast_log_error",
            "Mean absolute error of log(1 + forecast ms) against log(1 + actual ms): what the gate compares.",
            labels=labels,
        )
        count = GaugeMetricFamily(
            "ace_predictor_forecast_labels", "Labelled forecasts in the score window.", labels=labels
        )
        precision = GaugeMetricFamily(
            "ace_predictor_breach_precision", "Of the breaches forecast, the share that happened.", labels=labels
        )
        recall = GaugeMetricFamily(
            "ace_predictor_breach_recall", "Of the breaches that happened, the share forecast.", labels=labels
        )
        proven = GaugeMetricFamily(
            "ace_predictor_model_proven",
            "1 when the trust gate has passed the version on this fleet's labels (its forecasts may drive breakers).",
            labels=labels,
        )
        for v in health.versions if health is not None else ():
            key = [v.version, v.role.value.lower()]
            s = v.scores
            proven.add_metric(key, int(v.trust.proven))
            count.add_metric(key, s.labels)
            if s.labels:
                mae.add_metric(key, s.mae_ms / 1000.0)
                log_mae.add_metric(key, s.log_mae)
            # None: no breach forecast (precision) or none happened (recall).
            if s.breach_precision is not None:
                precision.add_metric(key, s.breach_precision)
            if s.breach_recall is not None:
                recall.add_metric(key, s.breach_recall)
        yield from (mae, log_mae, count, precision, recall, proven)
        fires = CounterMetricFamily(
            "ace_predictor_error_drift_detections",
            "Times the Page-Hinkley detector on the active version's forecast error fired.",
            labels=[],
        )
        statistic = GaugeMetricFamily(
            "ace_predictor_error_drift_statistic",
            "The error detector's statistic; it fires at ace_predictor_error_drift_threshold.",
            labels=[],
        )
        threshold = GaugeMetricFamily(
            "ace_predictor_error_drift_threshold", "Where the error detector fires.", labels=[]
        )
        features = CounterMetricFamily(
            "ace_predictor_feature_drift_detections",
            "Times the detector on one standardised input feature fired (logged; starts no retrain).",
            labels=["feature"],
        )
        pending = GaugeMetricFamily(
            "ace_predictor_pending_forecasts", "Forecasts waiting for their horizon to pass.", labels=[]
        )
        dropped = CounterMetricFamily(
            "ace_predictor_dropped_shadow_batches",
            "Predict calls the shadow versions missed because their queue was full.",
            labels=[],
        )
        if health is not None:
            fires.add_metric([], health.error_drift.fires)
            statistic.add_metric([], health.error_drift.statistic)
            threshold.add_metric([], health.error_drift_threshold)
            for name, state in health.feature_drift:
                features.add_metric([name], state.fires)
            pending.add_metric([], health.counts.pending)
            dropped.add_metric([], health.dropped_batches)
        yield from (fires, statistic, threshold, features, pending, dropped)
