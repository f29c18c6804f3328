"""The ace.v1.Trainer servicer, which only converts, and start()."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc

from ace.v1 import feature_store_pb2_grpc, predictor_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.common import addresses, tls
from services.common.config import METRICS_OFF
from services.common.metrics import MetricsSetup
from services.common.serving import RunningServer, start_server
from services.common.telemetry import Point
from services.common.timeutil import set_timestamp
from services.trainer import history, job, publish, watcher
from services.trainer.config import TrainerConfig
from services.trainer.job import Defaults, HistoryLoader, Result, Trainer
from services.trainer.metrics import LastTrainingCollector, RetrainCollector, TrainingMetrics
from services.trainer.train import TrainedModel
from services.trainer.watcher import RetrainWatcher, WatcherStatus

SERVICE_NAME: str = trainer_pb2.DESCRIPTOR.services_by_name["Trainer"].full_name
# Train and GetStatus requests are small (a path, a seed, a few numbers).
MAX_RECEIVE_BYTES = 1024 * 1024
STAGE = {
    job.Stage.HISTORY: trainer_pb2.HISTORY,
    job.Stage.FEATURES: trainer_pb2.FEATURES,
    job.Stage.FIT: trainer_pb2.FIT,
    job.Stage.EXPORT: trainer_pb2.EXPORT,
    job.Stage.VERIFY: trainer_pb2.VERIFY,
    job.Stage.PUBLISH: trainer_pb2.PUBLISH,
    job.Stage.DONE: trainer_pb2.DONE,
}


TRIGGER = {
    job.Trigger.OPERATOR: trainer_pb2.OPERATOR,
    job.Trigger.FLEET_FIRST: trainer_pb2.FLEET_FIRST,
    job.Trigger.FLEET_REFRESH: trainer_pb2.FLEET_REFRESH,
    job.Trigger.DRIFT: trainer_pb2.DRIFT,
}


def _source(request: trainer_pb2.TrainRequest) -> job.Source | None:
    kind = request.WhichOneof("source")
    if kind == "synthetic":
        s = request.synthetic
        return job.SyntheticSource(seed=s.seed, backends=s.backends, duration_s=s.duration_s, interval_s=s.interval_s)
    if kind == "csv_path":
        return job.CsvSource(path=request.csv_path)
    if kind == "feature_store":
        return job.FeatureStoreSource(duration_s=request.feature_store.duration_s)
    return None


def _result(result: Result) -> trainer_pb2.TrainResult:
    m = result.model.metrics
    reply = trainer_pb2.TrainResult(
        version=result.model.version,
        metrics=trainer_pb2.TrainMetrics(
            train_rows=m.train_rows,
            test_rows=m.test_rows,
            mae_ms=m.mae_ms,
            r2=m.r2,
            breach_precision=m.breach_precision,
            breach_recall=m.breach_recall,
            persistence_mae_ms=m.persistence_mae_ms,
            onnx_max_abs_diff_ms=m.onnx_max_abs_diff_ms,
            threshold_ms=m.threshold_ms,
            horizon_s=m.horizon_s,
        ),
        published=result.published,
        publish_error=result.publish_error,
        replicas=[
            trainer_pb2.ReplicaPublish(address=r.address, published=r.published, error=r.error) for r in result.replicas
        ],
        trigger=TRIGGER[result.trigger],
    )
    set_timestamp(reply.history_start_at, result.model.provenance.start_at)
    set_timestamp(reply.history_end_at, result.model.provenance.end_at)
    return reply


def _retrain_status(status: WatcherStatus) -> trainer_pb2.RetrainStatus:
    reply = trainer_pb2.RetrainStatus(
        auto_train=status.auto,
        on_drift=status.on_drift,
        waiting_for=status.waiting_for,
        started=status.started,
    )
    if status.active_source is not None:
        reply.active_history_source = publish.HISTORY_SOURCES[status.active_source]
    if status.next_due_at is not None:
        set_timestamp(reply.next_due_at, status.next_due_at)
    return reply


class TrainerServicer(trainer_pb2_grpc.TrainerServicer):
    def __init__(self, trainer: Trainer, defaults: Defaults, retrain: RetrainWatcher | None = None) -> None:
        self._trainer = trainer
        self._defaults = defaults
        self._retrain = retrain

    def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> Iterator[trainer_pb2.TrainProgress]:
        plan = job.make_job(
            _source(request),
            publish=request.publish,
            n_estimators=request.n_estimators,
            max_depth=request.max_depth,
            horizon_s=request.horizon_s,
            threshold_ms=request.threshold_ms,
            seed=request.seed,
            defaults=self._defaults,
        )
        for step in self._trainer.run(plan):
            # A caller gone or past its deadline ends the job between stages
            # instead of training for no one.
            if not context.is_active():
                return
            progress = trainer_pb2.TrainProgress(stage=STAGE[step.stage], message=step.message)
            if step.result is not None:
                progress.result.CopyFrom(_result(step.result))
            yield progress

    def GetStatus(
        self, request: trainer_pb2.GetStatusRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.TrainerStatus:
        status = self._trainer.status()
        reply = trainer_pb2.TrainerStatus(training=status.training)
        if status.last_result is not None:
            reply.last_result.CopyFrom(_result(status.last_result))
        if status.last_finished_at is not None:
            set_timestamp(reply.last_finished_at, status.last_finished_at)
        if self._retrain is not None:
            reply.retrain.CopyFrom(_retrain_status(self._retrain.status()))
        return reply


def start(
    config: TrainerConfig,
    *,
    load_history: HistoryLoader | None = None,
    now: Callable[[], float] = time.time,
) -> RunningServer:
    """Starts the trainer on config.port (0 picks one); SERVING at once, since
    training needs nothing else (a predictor that cannot be reached only
    makes publishing fail). load_history and now are for tests."""
    channel = tls.channel(config.predictor_addr, config.tls)
    predictor = predictor_pb2_grpc.PredictorStub(channel)
    feature_store_channel = tls.channel(config.feature_store_addr, config.tls)
    feature_store = feature_store_pb2_grpc.FeatureStoreStub(feature_store_channel)

    token = config.admin.metadata()

    def publisher(model: TrainedModel, shadow: bool = False) -> job.PublishOutcome:
        metadata = publish.metadata_of(model, shadow=shadow)
        if not config.predictor_publish_addrs:
            one = publish.publish(
                predictor, metadata, model.onnx_bytes, timeout_s=config.publish_timeout_s, call_metadata=token
            )
            return job.PublishOutcome.of((job.ReplicaOutcome(config.predictor_addr, one.published, one.error),))
        # Resolved at every publish: the replicas behind a headless Service
        # change as pods come and go.
        targets = addresses.resolve(config.predictor_publish_addrs)
        return publish.publish_all(
            targets, metadata, model.onnx_bytes, timeout_s=config.publish_timeout_s, call_metadata=token, tls=config.tls
        )

    def load(source: job.Source) -> list[Point]:
        if isinstance(source, job.FeatureStoreSource):
            return history.read(feature_store, source)
        return job.load_history(source, config.data_dir)

    setup = None if config.metrics_port == METRICS_OFF else MetricsSetup(config.metrics_port)
    trainings = TrainingMetrics(setup.registry) if setup is not None else None
    trainer = Trainer(
        limits=config.window_limits,
        publisher=publisher,
        load=load_history or load,
        now=now,
        quality=lambda source: history.read_quality(feature_store, source),
        quality_weight=config.quality_weight,
        on_finished=trainings.finished if trainings is not None else lambda outcome, seconds: None,
    )
    defaults = Defaults(horizon_s=config.horizon_s, threshold_ms=config.threshold_ms)
    retrain = (
        watcher.build(config.retrain, predictor, trainer, lambda m: publisher(m, shadow=True), defaults)
        if config.retrain.polls
        else None
    )
    if setup is not None:
        setup.registry.register(LastTrainingCollector(trainer))
        setup.registry.register(RetrainCollector(retrain.status if retrain is not None else None))
    servicer = TrainerServicer(trainer, defaults, retrain)
    try:
        running = start_server(
            host=config.host,
            port=config.port,
            service_name=SERVICE_NAME,
            register=lambda server: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, server),
            serving=True,
            options=[("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)],
            admin=config.admin,
            tls=config.tls,
            metrics=setup,
        )
    except BaseException:
        channel.close()
        feature_store_channel.close()
        raise
    running.on_stop.append(channel.close)
    running.on_stop.append(feature_store_channel.close)
    if retrain is not None:
        watcher.start(running, retrain)
    return running
