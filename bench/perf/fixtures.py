"""What the benchmarks stand on: a forest trained by ACE's own trainer, a
router table of any size, and the trivial echo RPC that is the floor."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc
import numpy as np

from ace.v1 import predictor_pb2, router_pb2, router_pb2_grpc
from services.common import features, logs, synthetic
from services.common.serving import RunningServer, start_server
from services.common.window import WindowLimits
from services.router import operations
from services.router.outcomes import DecisionLog
from services.router.policy import Settings
from services.router.server import SERVICE_NAME, RouterServicer
from services.router.table import RoutingTable, Update
from services.router.transitions import TransitionLog
from services.trainer import dataset, train
from services.trainer.publish import metadata_of

ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
DECIDE_METHOD = "/ace.v1.Router/Decide"
CANNED_SERVICE = "bench.Canned"
CANNED_METHOD = f"/{CANNED_SERVICE}/Decide"


def quiet() -> None:
    """Warnings only: the services log every new backend, and a benchmark adds thousands."""
    logs.configure("bench", "console", "warning")


@dataclass(frozen=True)
class Forest:
    """The trainer's forest and its ONNX export, as the predictor serves it."""

    fitted: train.Fitted
    model: train.TrainedModel
    X: object  # the dataset's feature rows (numpy, N_FEATURES wide)

    @property
    def trees(self) -> int:
        return len(self.fitted.forest.estimators_)

    def metadata(self, version: str) -> predictor_pb2.ModelMetadata:
        return metadata_of(replace(self.model, version=version))


def train_forest(backends: int, hours: float) -> Forest:
    """Trains with the trainer's defaults (trees, depth, leaves) on seeded
    synthetic history, exactly as `Train` would."""
    history = synthetic.random_history(1, n_backends=backends, duration_s=hours * 3600.0)
    data = dataset.build(history.points, 300.0, WindowLimits())
    params = train.TrainParams(horizon_s=300.0, threshold_ms=300.0)
    fitted = train.fit(data, params)
    model = train.verify(data, fitted, train.export(fitted), params, time.time())
    return Forest(fitted, model, data.X)


def table_of(backends: int, *, open_every: int = 7) -> RoutingTable:
    """A routing table of warm backends with forecasts; every `open_every`th
    one is forecast over the threshold, so decisions skip some. With the
    decision log the router always keeps, so every decision gets its id."""
    table = RoutingTable(Settings(), DecisionLog())
    zeros = np.zeros(features.N_FEATURES)
    table.apply(
        [
            Update(
                backend_id=backend_name(i),
                as_of=synthetic.EPOCH,
                points=30,
                observed_ms=120.0,
                predicted_ms=450.0 if i % open_every == open_every - 1 else 100.0 + i % 50,
                features=zeros,
                covered_s=290.0,
            )
            for i in range(backends)
        ]
    )
    return table


def backend_name(i: int) -> str:
    return f"gpu-{i:05d}"


def decide_request(candidates: int, offset: int = 0) -> bytes:
    names = [backend_name(offset + i) for i in range(candidates)]
    return router_pb2.DecideRequest(request_id="bench", candidates=names).SerializeToString()


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def echo_handler() -> grpc.GenericRpcHandler:
    """The floor: a unary method that returns its request, bytes in and out."""
    return grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})


def canned_handler(answer: router_pb2.Decision) -> grpc.GenericRpcHandler:
    """A typed method shaped like Decide (parses a DecideRequest, serialises
    a Decision) that answers `answer` without deciding: what gRPC's typed
    path costs beyond the echo's raw bytes."""

    def canned(request: router_pb2.DecideRequest, context: grpc.ServicerContext) -> router_pb2.Decision:
        return answer

    handler = grpc.unary_unary_rpc_method_handler(
        canned,
        request_deserializer=router_pb2.DecideRequest.FromString,
        response_serializer=router_pb2.Decision.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(CANNED_SERVICE, {"Decide": handler})


def router_with_echo(table: RoutingTable, *, metrics: bool = False) -> RunningServer:
    """The router's servicer over `table`, on the server setup every ACE
    service uses (error interceptor, health, reflection, thread pool), with
    the echo method on the same server. With `metrics`, also what the
    router's metrics port adds, as `start` wires it: the gRPC metrics
    interceptor, the decision counter and the collectors (which cost only
    when scraped, and nothing scrapes during a benchmark)."""

    servicer = RouterServicer(table, table.settings)
    # A real answer of this table, so the canned one has Decide's size.
    answer = servicer.Decide(router_pb2.DecideRequest.FromString(decide_request(5)), None)

    def register(server: grpc.Server) -> None:
        router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
        server.add_generic_rpc_handlers([echo_handler(), canned_handler(answer)])

    setup = operations.setup(0, table, TransitionLog(table), lambda: None) if metrics else None
    return start_server(
        host="127.0.0.1", port=0, service_name=SERVICE_NAME, register=register, serving=True, metrics=setup
    )


def stop_all(servers: list[RunningServer], close: list[Callable[[], None]] | None = None) -> None:
    for hook in close or []:
        hook()
    for running in servers:
        running.stop(0)
