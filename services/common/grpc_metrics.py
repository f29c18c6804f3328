"""The server-side gRPC metrics go-grpc-middleware and py-grpc-prometheus
export, under the same names and labels, so their dashboards and alerts work
on ACE unchanged:

    grpc_server_started_total{grpc_type, grpc_service, grpc_method}
    grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
    grpc_server_msg_received_total{grpc_type, grpc_service, grpc_method}
    grpc_server_msg_sent_total{grpc_type, grpc_service, grpc_method}
    grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method} (histogram)

grpc_code is spelt as Go spells it ("OK", "InvalidArgument", "Canceled"),
which is what the existing dashboards filter on. The interceptor is the
outermost one, so a call the admin guard refuses is counted with its code.
Handling time runs from the handler's start to its last message: it leaves
out (de)serialisation, as the Go middleware does.

A service counts what its unary answers say (the router's decisions by
action) with an observer per method, called with each successful response:
the servicer itself stays free of metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.handlers import BIDI_STREAM, CLIENT_STREAM, UNARY, Behavior, rebuild

GO_CODE = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
# go-grpc-middleware's default buckets, seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("grpc_type", "grpc_service", "grpc_method")
# Told of each successful unary response of one method, by full method name.
Observer = Callable[[Any], None]


class _Method:
    """One method's series, resolved once, so a call costs no label lookups."""

    __slots__ = ("_handled", "_labels", "_owner", "handling", "observe", "received", "sent", "started")

    def __init__(self, owner: GrpcMetrics, labels: tuple[str, str, str], observe: Observer | None) -> None:
        self._owner = owner
        self.observe = observe
        self._labels = labels
        self.started = owner.started.labels(*labels)
        self.received = owner.received.labels(*labels)
        self.sent = owner.sent.labels(*labels)
        self.handling = owner.handling.labels(*labels)
        self._handled: dict[str, Any] = {}

    def handled(self, code: str) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._owner.handled.labels(*self._labels, code)
        return child


def _code(context: grpc.ServicerContext, default: str) -> str:
    code = context.code()
    return GO_CODE.get(code, "Unknown") if code is not None else default


class GrpcMetrics(grpc.ServerInterceptor):
    def __init__(self, registry: CollectorRegistry, observers: Mapping[str, Observer] | None = None) -> None:
        self._observers = dict(observers or {})
        self.started = Counter("grpc_server_started", "RPCs started on the server.", LABELS, registry=registry)
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status.",
            (*LABELS, "grpc_code"),
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received", "Stream messages received on the server.", LABELS, registry=registry
        )
        self.sent = Counter("grpc_server_msg_sent", "Stream messages sent by the server.", LABELS, registry=registry)
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to handle an RPC, from its start to its last message.",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self._methods: dict[tuple[str, str], _Method] = {}

    def _method(self, full: str, kind: str) -> _Method:
        found = self._methods.get((full, kind))
        if found is None:
            service, _, name = full.lstrip("/").rpartition("/")
            found = self._methods[(full, kind)] = _Method(self, (kind, service, name), self._observers.get(full))
        return found

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED, answered by gRPC itself before any handler
        full = handler_call_details.method

        def wrap(behavior: Behavior, kind: str) -> Behavior:
            m = self._method(full, kind)
            streaming = kind in (CLIENT_STREAM, BIDI_STREAM)
            return _unary(behavior, m, streaming) if kind in (UNARY, CLIENT_STREAM) else _stream(behavior, m, streaming)

        return rebuild(handler, wrap)


def _counted(requests: Iterator[Any], m: _Method) -> Iterator[Any]:
    for request in requests:
        m.received.inc()
        yield request


def _begin(request: Any, m: _Method, streaming: bool) -> tuple[Any, float]:
    """Counts the start (and a unary request); the request, its stream's
    messages counted as they are read, and the start time."""
    m.started.inc()
    if streaming:
        request = _counted(request, m)
    else:
        m.received.inc()
    return request, time.perf_counter()


def _unary(behavior: Callable[..., Any], m: _Method, streaming: bool) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        request, start = _begin(request, m, streaming)
        code = "Unknown"
        try:
            response = behavior(request, context)
            code = _code(context, "OK")
            if code == "OK":
                m.sent.inc()
                if m.observe is not None:
                    m.observe(response)
            return response
        except BaseException:
            code = _code(context, "Unknown")
            raise
        finally:
            m.handling.observe(time.perf_counter() - start)
            m.handled(code).inc()

    return handler


def _stream(behavior: Callable[..., Iterator[Any]], m: _Method, streaming: bool) -> Callable[..., Iterator[Any]]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        request, start = _begin(request, m, streaming)
        code = "Unknown"
        try:
            for response in behavior(request, context):
                m.sent.inc()
                yield response
            code = _code(context, "OK")
        except GeneratorExit:
            # The client went away (cancelled, or past its deadline) mid-stream.
            code = _code(context, "Canceled")
            raise
        except BaseException:
            code = _code(context, "Unknown")
            raise
        finally:
            m.handling.observe(time.perf_counter() - start)
            m.handled(code).inc()

    return handler
