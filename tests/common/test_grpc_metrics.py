"""The gRPC interceptor's metrics, read over HTTP from a real server on port 0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from services.common.errors import InvalidInput
from services.common.metrics import MetricsSetup
from services.common.serving import RunningServer, start_server
from tests import scrape

SERVICE = "test.Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise InvalidInput("payload: refused")


def _crash(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise RuntimeError("a bug")


def _repeat(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in range(3):
        yield request


def _gather(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"".join(requests)


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, list[Any]]]:
    seen: list[Any] = []

    def register(server: grpc.Server) -> None:
        handlers = {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Refuse": grpc.unary_unary_rpc_method_handler(_refuse),
            "Crash": grpc.unary_unary_rpc_method_handler(_crash),
            "Repeat": grpc.unary_stream_rpc_method_handler(_repeat),
            "Gather": grpc.stream_unary_rpc_method_handler(_gather),
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])

    metrics = MetricsSetup(0, observers={f"/{SERVICE}/Echo": seen.append})
    running = start_server(
        host="127.0.0.1", port=0, service_name=SERVICE, register=register, serving=True, metrics=metrics
    )
    yield running, seen
    running.stop(0)


def _labels(method: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method}


def test_calls_are_counted_by_method_and_code_under_the_go_names(served: tuple[RunningServer, list[Any]]) -> None:
    running, seen = served
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        echo = channel.unary_unary(f"/{SERVICE}/Echo")
        for payload in (b"a", b"b"):
            assert echo(payload, timeout=5) == payload
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(f"/{SERVICE}/Refuse")(b"x", timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as crashed:
            channel.unary_unary(f"/{SERVICE}/Crash")(b"x", timeout=5)
        assert crashed.value.code() == grpc.StatusCode.INTERNAL
    found = scrape.samples(running.metrics_port or 0)
    assert scrape.value(found, "grpc_server_started_total", **_labels("Echo")) == 2
    assert scrape.value(found, "grpc_server_handled_total", **_labels("Echo"), grpc_code="OK") == 2
    assert scrape.value(found, "grpc_server_handled_total", **_labels("Refuse"), grpc_code="InvalidArgument") == 1
    assert scrape.value(found, "grpc_server_handled_total", **_labels("Crash"), grpc_code="Internal") == 1
    assert scrape.value(found, "grpc_server_handling_seconds_count", **_labels("Echo")) == 2
    assert scrape.value(found, "grpc_server_handling_seconds_bucket", **_labels("Echo"), le="+Inf") == 2
    # Only successful answers reach the observer.
    assert seen == [b"a", b"b"]


def test_stream_messages_are_counted_each(served: tuple[RunningServer, list[Any]]) -> None:
    running, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        assert list(channel.unary_stream(f"/{SERVICE}/Repeat")(b"r", timeout=5)) == [b"r"] * 3
        assert channel.stream_unary(f"/{SERVICE}/Gather")(iter([b"x", b"y", b"z", b"w"]), timeout=5) == b"xyzw"
    found = scrape.samples(running.metrics_port or 0)
    assert scrape.value(found, "grpc_server_msg_sent_total", **_labels("Repeat", "server_stream")) == 3
    assert scrape.value(found, "grpc_server_handled_total", **_labels("Repeat", "server_stream"), grpc_code="OK") == 1
    assert scrape.value(found, "grpc_server_msg_received_total", **_labels("Gather", "client_stream")) == 4


def test_a_refused_admin_call_is_counted_with_its_code(tmp_path) -> None:
    from ace.v1 import predictor_pb2, predictor_pb2_grpc
    from services.predictor import config, server

    running = server.start(config.load(["--host", "127.0.0.1", "--port", "0", "--model-dir", str(tmp_path)]))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                predictor_pb2_grpc.PredictorStub(channel).Rollback(predictor_pb2.RollbackRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        found = scrape.samples(running.metrics_port or 0)
        labels = {"grpc_type": "unary", "grpc_service": "ace.v1.Predictor", "grpc_method": "Rollback"}
        assert scrape.value(found, "grpc_server_handled_total", **labels, grpc_code="PermissionDenied") == 1
    finally:
        running.stop(0)


def test_unknown_paths_on_the_metrics_port_say_what_is_served(served: tuple[RunningServer, list[Any]]) -> None:
    running, _ = served
    with pytest.raises(Exception, match="404"):
        scrape.text(running.metrics_port or 0, "/nothing")
