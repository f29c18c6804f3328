"""The guard on admin calls: the RPCs that change how the fleet behaves
(publishing or rolling back a model, training one) need a bearer token; data
calls do not. One server interceptor checks it, so a servicer never does.

The token is a shared secret read from a file (in Kubernetes, a mounted
Secret). A server with no token refuses every admin call unless it was started
with --insecure-admin, which only local development should use."""

from __future__ import annotations

import argparse
import hmac
import os
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from services.common import config

_log = structlog.get_logger("admin")

HEADER = "authorization"
SCHEME = "Bearer "
TOKEN_FILE_ENV = "ACE_ADMIN_TOKEN_FILE"
Metadata = tuple[tuple[str, str], ...]
# Admin methods by full gRPC name; every other method is a data call.
ADMIN_METHODS: frozenset[str] = frozenset(
    {
        "/ace.v1.Predictor/PublishModel",
        "/ace.v1.Predictor/Rollback",
        "/ace.v1.Trainer/Train",
    }
)


@dataclass(frozen=True)
class AdminAuth:
    """What a server accepts on admin calls. The default refuses them all."""

    # The shared secret; None: no token configured.
    token: str | None = None
    # Accept admin calls without a token (local development only).
    insecure: bool = False

    def metadata(self) -> Metadata:
        """Call metadata that carries this token, for a client that makes
        admin calls to another service (the trainer publishing)."""
        return bearer(self.token) if self.token else ()


# Refuses every admin call: the default of each service's config.
REFUSE_ALL = AdminAuth()


def bearer(token: str) -> Metadata:
    return ((HEADER, SCHEME + token),)


def read_token(path: Path) -> str:
    """The token in `path`, surrounding whitespace removed (a Secret written
    with `echo` ends in a newline)."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise config.ConfigError(f"--admin-token-file: cannot read {path}: {exc.strerror}") from exc
    config.require(len(token) >= 16, f"--admin-token-file: the token in {path} must be at least 16 characters")
    return token


def write_token(path: Path) -> str:
    """Writes a fresh random token, readable by its owner only, and returns it."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def client_metadata(path: str | None = None) -> Metadata:
    """Call metadata from a token file (default: the one ACE_ADMIN_TOKEN_FILE
    names), for the tools that call Train; empty when there is none."""
    path = path if path is not None else os.environ.get(TOKEN_FILE_ENV)
    return bearer(read_token(Path(path))) if path else ()


def add_client_option(parser: argparse.ArgumentParser) -> None:
    """--admin-token-file for a tool that makes admin calls."""
    config.option(
        parser,
        "--admin-token-file",
        env=TOKEN_FILE_ENV,
        cast=str,
        default="",
        help="file holding the bearer token admin calls must carry (a mounted Secret)",
    )


def add_options(parser: argparse.ArgumentParser) -> None:
    """--admin-token-file and --insecure-admin for a server."""
    add_client_option(parser)
    config.option(
        parser,
        "--insecure-admin",
        env="ACE_INSECURE_ADMIN",
        cast=config.boolean,
        default=False,
        help="accept admin calls without a token: local development only",
    )


def from_args(args: argparse.Namespace) -> AdminAuth:
    token = read_token(Path(args.admin_token_file)) if args.admin_token_file else None
    return AdminAuth(token=token, insecure=args.insecure_admin)


class AdminInterceptor(grpc.ServerInterceptor):
    """Refuses an admin call that lacks the right token before its handler
    runs: UNAUTHENTICATED for a missing or wrong token, PERMISSION_DENIED when
    the server has no token and is not in insecure mode."""

    def __init__(self, auth: AdminAuth, methods: Collection[str] = ADMIN_METHODS) -> None:
        self._auth = auth
        self._methods = methods
        self._expected = (SCHEME + auth.token).encode() if auth.token else None

    def _refusal(self, details: grpc.HandlerCallDetails) -> tuple[grpc.StatusCode, str] | None:
        if details.method not in self._methods or self._auth.insecure:
            return None
        if self._expected is None:
            return grpc.StatusCode.PERMISSION_DENIED, "admin calls are disabled: the server has no admin token"
        sent = next((str(v) for k, v in details.invocation_metadata or () if k == HEADER), None)
        if sent is None:
            return grpc.StatusCode.UNAUTHENTICATED, f"{HEADER}: an admin call needs '{SCHEME}<token>'"
        # Constant time, so the time to refuse does not tell how much matched.
        if not hmac.compare_digest(sent.encode(), self._expected):
            return grpc.StatusCode.UNAUTHENTICATED, f"{HEADER}: wrong admin token"
        return None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        refusal = self._refusal(handler_call_details)
        if refusal is None:
            return continuation(handler_call_details)
        code, message = refusal
        _log.warning("admin_call_refused", method=handler_call_details.method, code=code.name)
        handler = continuation(handler_call_details)
        return _refusing(handler, code, message)


def _refusing(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(_request: object, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    # The refusal must take the handler's shape (a client stream or not) so
    # gRPC reads the request the way the client sends it.
    if handler is not None and handler.request_streaming:
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(abort)
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)
