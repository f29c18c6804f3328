"""One mapping from the project's exceptions to gRPC status codes, applied to
every handler of a server by an interceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

from services.common import errors
from services.common.handlers import BIDI_STREAM, CLIENT_STREAM, UNARY, Behavior, rebuild

_log = structlog.get_logger("grpc")

STATUS_OF: dict[type[errors.AceError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


# Characters of an error message sent as the status details. Messages quote
# the offending value, which may be megabytes long; a client refuses details
# over its metadata limit (16 KiB by default) and would see RESOURCE_EXHAUSTED
# "Stream removed" instead of the status. 1000 characters stay under it
# even percent-encoded.
MAX_DETAILS = 1000


def details_of(exc: errors.AceError) -> str:
    """The message, cut to MAX_DETAILS characters."""
    text = str(exc)
    if len(text) <= MAX_DETAILS:
        return text
    return f"{text[: MAX_DETAILS - 40]}... ({len(text) - MAX_DETAILS + 40} characters cut)"


def status_of(exc: errors.AceError) -> grpc.StatusCode:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
    if isinstance(exc, errors.AceError):
        context.abort(status_of(exc), details_of(exc))
    # context.abort sets the status, then raises a bare Exception; let it
    # through rather than overwrite the status with INTERNAL.
    if isinstance(exc, grpc.RpcError) or context.code() is not None:
        raise exc
    _log.exception("unexpected_error", method=method)
    context.abort(grpc.StatusCode.INTERNAL, "internal error")


class _Undecodable:
    """A request message that did not parse. gRPC would answer INTERNAL for
    it; the handler answers INVALID_ARGUMENT instead, as for any bad field."""

    def __init__(self, type_name: str) -> None:
        self.error = errors.InvalidInput(f"request: not a valid {type_name} message")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    type_name = getattr(descriptor, "full_name", "request")

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # noqa: BLE001 - any parse failure is the client's bad bytes
            return _Undecodable(type_name)

    return deserialize


def _checked(request: Any, streaming: bool) -> Any:
    """The request, or its messages one by one, raising InvalidInput at the
    first that did not parse."""
    if not streaming:
        if isinstance(request, _Undecodable):
            raise request.error
        return request

    def messages() -> Iterator[Any]:
        for message in request:
            if isinstance(message, _Undecodable):
                raise message.error
            yield message

    return messages()


def _wrap_unary(behavior: Callable[..., Any], method: str, streaming: bool) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(_checked(request, streaming), context)
        except Exception as exc:  # noqa: BLE001 - the single place errors become statuses
            _abort(context, method, exc)

    return handler


def _wrap_stream(behavior: Callable[..., Iterator[Any]], method: str, streaming: bool) -> Callable[..., Iterator[Any]]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(_checked(request, streaming), context)
        except Exception as exc:  # noqa: BLE001 - the single place errors become statuses
            _abort(context, method, exc)

    return handler


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps AceError subclasses to their status and anything unexpected to
    INTERNAL, logged once with its traceback and never shown to the client."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrap(behavior: Behavior, kind: str) -> Behavior:
            streaming = kind in (CLIENT_STREAM, BIDI_STREAM)
            if kind in (UNARY, CLIENT_STREAM):
                return _wrap_unary(behavior, method, streaming)
            return _wrap_stream(behavior, method, streaming)

        return rebuild(handler, wrap, _tolerant(handler.request_deserializer))
