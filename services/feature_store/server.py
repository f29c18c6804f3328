"""The FeatureStore servicer: converts between protobuf and the store's plain
values. Errors are raised as services.common.errors and mapped to statuses by
the shared interceptor."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing

import grpc

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, telemetry_pb2
from services.common import outcome_summary
from services.common.config import METRICS_OFF
from services.common.errors import FailedPrecondition, InvalidInput, ResourceExhausted, Unavailable
from services.common.features import FEATURE_NAMES, SCHEMA_VERSION
from services.common.metrics import MetricsSetup
from services.common.points import to_message
from services.common.serving import RunningServer, start_server
from services.common.slots import StreamSlots
from services.common.telemetry import Point, problem
from services.common.timeutil import set_timestamp, to_seconds
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.history import History, Retention, event_range
from services.feature_store.metrics import IngestMetrics, StoreCollector
from services.feature_store.outcomes import OutcomeLog
from services.feature_store.store import BackendVector, Rejection, Store

SERVICE_NAME = feature_store_pb2.DESCRIPTOR.services_by_name["FeatureStore"].full_name
# How often a watch stream with nothing to send checks that its client is
# still there; cancellation and server stop also wake it at once.
WATCH_POLL_S = 0.5
# Worker threads kept for unary calls on top of the ones streams may hold.
UNARY_WORKERS = 16
# A full Ingest of 10000 points is about 1 MiB on the wire; 4 MiB leaves room
# for long ids and refuses anything larger before it is parsed.
MAX_RECEIVE_BYTES = 4 * 1024 * 1024
# Points per ReadHistory message: about 200 KB, well under gRPC's 4 MB.
HISTORY_BATCH_POINTS = 4096
# Summaries per IngestOutcomes request, as points per Ingest.
MAX_SUMMARIES_PER_REQUEST = 10_000
# Outcome summaries get this share of --history-max-bytes: a summary per
# backend and 10 s is about as much as the telemetry itself.
OUTCOMES_SHARE = 8


def point_of(msg: telemetry_pb2.TelemetryPoint) -> Point | str:
    """The point a message carries, or why it cannot be one when the
    timestamp is missing (the store checks everything else)."""
    point = Point(msg.backend_id, to_seconds(msg.observed_at), msg.load, msg.latency_ms, msg.error_rate)
    if msg.HasField("observed_at"):
        return point
    return problem(point, has_time=False) or "observed_at: required"


def ingest_response(accepted: int, rejected: Iterable[Rejection]) -> feature_store_pb2.IngestResponse:
    return feature_store_pb2.IngestResponse(
        accepted=accepted,
        rejected=[feature_store_pb2.Rejection(index=r.index, reason=r.reason) for r in rejected],
    )


def features_response(vectors: Iterable[BackendVector]) -> feature_store_pb2.GetFeaturesResponse:
    out = feature_store_pb2.GetFeaturesResponse(feature_names=FEATURE_NAMES, schema_version=SCHEMA_VERSION)
    for v in vectors:
        msg = out.vectors.add(
            backend_id=v.backend_id,
            schema_version=SCHEMA_VERSION,
            values=v.values.tolist(),
            points_in_window=v.points_in_window,
            window_covered_s=v.covered_s,
        )
        set_timestamp(msg.as_of, v.as_of)
    return out


class FeatureStoreServicer(feature_store_pb2_grpc.FeatureStoreServicer):
    def __init__(
        self,
        store: Store,
        *,
        max_points_per_request: int,
        max_streams: int,
        outcomes: OutcomeLog | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._outcomes = outcomes
        self._max_points = max_points_per_request
        self._streams = StreamSlots(max_streams)

    def Ingest(
        self, request: feature_store_pb2.IngestRequest, context: grpc.ServicerContext
    ) -> feature_store_pb2.IngestResponse:
        n = len(request.points)
        if n > self._max_points:
            raise InvalidInput(f"points: at most {self._max_points} per request, got {n}")
        result = self._store.ingest([point_of(p) for p in request.points])
        if self._metrics is not None:
            self._metrics.ingested(result.accepted, result.rejected)
        # Per-point rejections keep the valid points of a mixed batch; a
        # request that stored nothing because of the cap is refused as a
        # whole, so a client sees the overload in the status it retries on.
        if result.accepted == 0 and result.capped:
            raise ResourceExhausted(
                f"backend_id: backend cap of {self._store.max_backends} reached; "
                f"none of the {n} points stored ({result.capped} for new backends)"
            )
        return ingest_response(result.accepted, result.rejected)

    def IngestStream(
        self, request_iterator: Iterator[telemetry_pb2.TelemetryPoint], context: grpc.ServicerContext
    ) -> feature_store_pb2.IngestResponse:
        # A stream is how a live feed or a replay of a long history arrives,
        # so its length is not capped: each point is stored as it arrives
        # (watchers see it at once) and the server holds nothing per point
        # but the rejections it must answer with. Those are capped instead,
        # at the per-request cap, which also keeps the answer a sane size.
        accepted = 0
        rejected: list[Rejection] = []
        with self._streams.hold("IngestStream"):
            for index, msg in enumerate(request_iterator):
                result = self._store.ingest((point_of(msg),), first_index=index)
                if self._metrics is not None:
                    self._metrics.ingested(result.accepted, result.rejected)
                accepted += result.accepted
                if result.rejected:
                    rejected.extend(result.rejected)
                    if len(rejected) > self._max_points:
                        raise InvalidInput(
                            f"points: more than {self._max_points} points of the stream rejected, "
                            f"the last at index {index}: {result.rejected[0].reason}; "
                            f"the {accepted} valid points before it are stored"
                        )
        return ingest_response(accepted, rejected)

    def GetFeatures(
        self, request: feature_store_pb2.GetFeaturesRequest, context: grpc.ServicerContext
    ) -> feature_store_pb2.GetFeaturesResponse:
        return features_response(self._store.vectors(request.backend_ids))

    def WatchFeatures(
        self, request: feature_store_pb2.WatchFeaturesRequest, context: grpc.ServicerContext
    ) -> Iterator[feature_store_pb2.GetFeaturesResponse]:
        # Subscribing before the snapshot is read means no change can fall
        # between the two; at worst a backend is sent twice.
        with self._streams.hold("WatchFeatures"), closing(self._store.subscribe()) as subscription:
            # Wakes the wait at once when the client cancels or the server
            # cancels every call at the end of its grace period.
            context.add_callback(subscription.close)
            yield features_response(self._store.vectors())
            while context.is_active():
                changed = subscription.wait(WATCH_POLL_S)
                if changed is None:
                    break
                if changed:
                    yield features_response(self._store.vectors(sorted(changed)))
        if self._store.closed and context.is_active():
            raise Unavailable("feature store is shutting down; watch another replica or reconnect")

    def ReadHistory(
        self, request: feature_store_pb2.ReadHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[feature_store_pb2.HistoryBatch]:
        history = self._store.history
        if history is None:
            raise FailedPrecondition("history: this feature store keeps none (it runs without --history-dir)")
        start, end = event_range(
            to_seconds(request.start_time) if request.HasField("start_time") else None,
            to_seconds(request.end_time) if request.HasField("end_time") else None,
            request.last_s,
            history.newest,
        )
        with self._streams.hold("ReadHistory"):
            points = () if request.skip_points else history.read(start, end, request.backend_ids, HISTORY_BATCH_POINTS)
            for batch in points:
                if not context.is_active():
                    return
                yield feature_store_pb2.HistoryBatch(points=[to_message(p) for p in batch])
            if request.include_outcomes and self._outcomes is not None:
                for summaries in self._outcomes.read(start, end, request.backend_ids, HISTORY_BATCH_POINTS):
                    if not context.is_active():
                        return
                    yield feature_store_pb2.HistoryBatch(outcomes=[outcome_summary.to_message(s) for s in summaries])

    def IngestOutcomes(
        self, request: feature_store_pb2.IngestOutcomesRequest, context: grpc.ServicerContext
    ) -> feature_store_pb2.IngestOutcomesResponse:
        if self._outcomes is None:
            raise FailedPrecondition("history: this feature store keeps none (it runs without --history-dir)")
        if not request.batch_id:
            raise InvalidInput("batch_id: must not be empty")
        n = len(request.summaries)
        if n > MAX_SUMMARIES_PER_REQUEST:
            raise InvalidInput(f"summaries: at most {MAX_SUMMARIES_PER_REQUEST} per request, got {n}")
        result = self._outcomes.ingest(request.batch_id, [outcome_summary.from_message(m) for m in request.summaries])
        return feature_store_pb2.IngestOutcomesResponse(
            accepted=result.accepted,
            rejected=[feature_store_pb2.Rejection(index=r.index, reason=r.reason) for r in result.rejected],
            duplicate=result.duplicate,
        )


def start(config: FeatureStoreConfig, store: Store | None = None) -> RunningServer:
    """Starts the service on config.host:config.port (0 picks a free port),
    SERVING at once: an empty store is a working one."""
    if store is None:
        history = History(config.history_dir, config.retention) if config.history_dir is not None else None
        store = Store(config.limits, config.max_backends, history)
    outcomes = None
    if config.history_dir is not None:
        share = Retention(max(config.history_max_bytes // OUTCOMES_SHARE, 1), config.history_max_age_s)
        outcomes = OutcomeLog(config.history_dir, share)
    metrics = None if config.metrics_port == METRICS_OFF else MetricsSetup(config.metrics_port)
    servicer = FeatureStoreServicer(
        store,
        max_points_per_request=config.max_points_per_request,
        max_streams=config.max_streams,
        outcomes=outcomes,
        metrics=IngestMetrics(metrics.registry) if metrics is not None else None,
    )
    if metrics is not None:
        metrics.registry.register(StoreCollector(store))
    running = start_server(
        host=config.host,
        port=config.port,
        service_name=SERVICE_NAME,
        register=lambda server: feature_store_pb2_grpc.add_FeatureStoreServicer_to_server(servicer, server),
        serving=True,
        max_workers=config.max_streams + UNARY_WORKERS,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)],
        tls=config.tls,
        metrics=metrics,
    )
    # Watch streams never end on their own: end them before the grace period
    # so that it serves the calls that do.
    running.on_closing.append(store.close)
    if store.history is not None:
        running.on_stop.append(store.history.close)
    if outcomes is not None:
        running.on_stop.append(outcomes.close)
    return running
