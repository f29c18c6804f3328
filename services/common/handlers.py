"""Rebuilding a gRPC method handler around a wrapped behaviour, for the
server interceptors (error mapping, metrics): gRPC keeps a handler's
behaviour in one of four slots, by whether the request and the response
stream, and the rebuilt handler must keep the slot and the serialisers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

# The gRPC type of each slot, as go-grpc-middleware names it.
UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM = "unary", "client_stream", "server_stream", "bidi_stream"
Behavior = Callable[..., Any]


def kind_of(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return BIDI_STREAM if handler.response_streaming else CLIENT_STREAM
    return SERVER_STREAM if handler.response_streaming else UNARY


def rebuild(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Behavior, str], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """The handler with its behaviour replaced by wrap(behaviour, kind);
    `request_deserializer` replaces the handler's own when given."""
    kind = kind_of(handler)
    deserializer = request_deserializer or handler.request_deserializer
    make, behavior = {
        UNARY: (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
        CLIENT_STREAM: (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
        SERVER_STREAM: (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        BIDI_STREAM: (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
    }[kind]
    if behavior is None:
        return handler
    return make(
        wrap(behavior, kind), request_deserializer=deserializer, response_serializer=handler.response_serializer
    )
