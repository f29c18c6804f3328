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


def rebuild(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Behavior, str], Behavior],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """The handler with its behaviour replaced by wrap(behaviour, kind);
    `request_deserializer` replaces the handler's own when given."""
    deserializer = request_deserializer or handler.request_deserializer
    serializer = handler.response_serializer
    # An if chain, not a table: this runs for every call of every method.
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, UNARY), deserializer, serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, CLIENT_STREAM), deserializer, serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, SERVER_STREAM), deserializer, serializer)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, BIDI_STREAM), deserializer, serializer)
    return handler
