"""A loopback port nothing listens on, for tests of a dependency that is
down. The port is free when chosen; another process could take it before the
test dials it, which on loopback in a test run does not happen in practice."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
