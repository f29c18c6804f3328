"""The shared server plumbing: one error mapping for every kind of handler,
health that can be switched, and a graceful stop."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import errors
from services.common.serving import start_server

SERVICE = "test.Faulty"


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    kind = request.decode()
    if kind == "invalid":
        raise errors.InvalidInput("points[2].load: must be finite and >= 0, got -1")
    if kind == "precondition":
        raise errors.FailedPrecondition("no active model")
    if kind == "boom":
        raise RuntimeError("secret internals")
    return b"ok:" + request


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"first"
    raise errors.ResourceExhausted("too many watchers")


def _register(server: grpc.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(_unary),
                    "Stream": grpc.unary_stream_rpc_method_handler(_stream),
                },
            ),
        )
    )


@pytest.fixture
def server():
    running = start_server(host="127.0.0.1", port=0, service_name=SERVICE, register=_register, serving=False)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield running, channel
    channel.close()
    running.stop(0)


@pytest.mark.parametrize(
    ("kind", "code", "details"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "points[2].load: must be finite and >= 0, got -1"),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION, "no active model"),
        ("boom", grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
def test_errors_become_statuses_without_leaking_internals(server, kind, code, details):
    _, channel = server
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    with pytest.raises(grpc.RpcError) as err:
        call(kind.encode(), timeout=5)
    assert err.value.code() == code
    assert err.value.details() == details
    assert call(b"fine", timeout=5) == b"ok:fine"


def test_stream_errors_are_mapped_after_the_messages_sent(server):
    _, channel = server
    stream = channel.unary_stream(f"/{SERVICE}/Stream")(b"", timeout=5)
    assert next(stream) == b"first"
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_health_follows_the_service_and_goes_not_serving_on_stop(server):
    running, channel = server
    health = health_pb2_grpc.HealthStub(channel)
    check = lambda: health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status  # noqa: E731
    assert check() == health_pb2.HealthCheckResponse.NOT_SERVING
    running.set_serving(True)
    assert check() == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    closing: list[str] = []
    running.on_closing.append(lambda: closing.append("closing"))
    running.stop(1)
    assert closing == ["closing"]
    # Watchers hear NOT_SERVING before the server goes away.
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_the_server_is_live_while_the_service_is_not_ready(server):
    running, channel = server
    health = health_pb2_grpc.HealthStub(channel)
    status = lambda name: health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status  # noqa: E731
    assert (status(""), status(SERVICE)) == (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    running.stop(1)
    with pytest.raises(grpc.RpcError):
        status("")
