"""Turning a list of service addresses into the replicas behind them. An
entry whose host resolves to several addresses (a Kubernetes headless
Service names every pod of a StatefulSet) stands for each of them."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Target:
    address: str  # host:port to dial, or the entry that could not be resolved
    error: str = ""  # why the entry could not be resolved; "" when it was


def dns(host: str, port: int) -> list[str]:
    """Every address of host, in the order the resolver gives them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def split(entry: str) -> tuple[str, int]:
    """host and port of "host:port" or "[v6]:port"; ValueError otherwise."""
    host, sep, port = entry.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(entries: str, resolver: Resolver = dns) -> list[Target]:
    """The replicas behind a comma-separated list of host:port entries,
    each once, in order. An entry that cannot be resolved becomes a Target
    carrying the error, so that the caller can report it per replica."""
    targets: list[Target] = []
    seen: set[str] = set()
    for entry in (e.strip() for e in entries.split(",")):
        if not entry:
            continue
        try:
            host, port = split(entry)
            hosts = resolver(host, port)
        except (OSError, ValueError) as exc:
            targets.append(Target(entry, f"cannot resolve {entry}: {exc}"))
            continue
        for address in (join(h, port) for h in hosts):
            if address not in seen:
                seen.add(address)
                targets.append(Target(address))
    return targets
