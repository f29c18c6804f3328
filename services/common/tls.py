"""TLS for every call, optional: a server with a certificate serves TLS on
its one port; a process given a CA file calls the services it depends on
over TLS and checks their certificates. Without them, calls are plaintext,
as on a cluster whose NetworkPolicies already fence the pods in.

The files are read once at start, so a missing or unreadable one stops the
process with a message naming the flag instead of failing the first call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class Tls:
    # PEM contents, not paths: read and checked once when the config is built.
    cert_chain: bytes = b""  # this server's certificate chain
    private_key: bytes = b""
    ca: bytes = b""  # the CA that signs the servers this process calls

    @property
    def serves(self) -> bool:
        return bool(self.cert_chain)

    @property
    def calls(self) -> bool:
        return bool(self.ca)


PLAINTEXT = Tls()


class TlsError(ValueError):
    """A TLS flag that cannot be used; the message names it."""


def _read(flag: str, path: str) -> bytes:
    if not path:
        return b""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise TlsError(f"{flag}: {path} holds no PEM block")
    return data


def load(cert_file: str, key_file: str, ca_file: str) -> Tls:
    """The TLS settings from the three flags; TlsError naming the flag."""
    if bool(cert_file) != bool(key_file):
        raise TlsError("--tls-cert-file and --tls-key-file: give both or neither")
    return Tls(
        cert_chain=_read("--tls-cert-file", cert_file),
        private_key=_read("--tls-key-file", key_file),
        ca=_read("--tls-ca-file", ca_file),
    )


def add_port(server: grpc.Server, address: str, tls: Tls) -> int:
    """Binds the server's one port, TLS when it has a certificate."""
    bound: int
    if not tls.serves:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)]))
    return bound


def channel(address: str, tls: Tls, options: Sequence[tuple[str, int | str]] = ()) -> grpc.Channel:
    """A channel to a service this process depends on: TLS, checking the
    server's certificate against the CA, when a CA is configured."""
    if not tls.calls:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=tls.ca), options=list(options))
