"""The feature store, predictor and router wired together: as separate
processes for measuring (tools/constellation.py, as `make up` runs them) or
in this process for the smoke run."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from bench.perf.fixtures import quiet
from services.common.serving import RunningServer
from services.feature_store import config as fs_config
from services.feature_store import server as fs_server
from services.predictor import config as pr_config
from services.predictor import server as pr_server
from services.router import config as rt_config
from services.router import server as rt_server
from tools.constellation import Constellation

NAMES = ("feature_store", "predictor", "router")
# The benchmark publishes models itself, on localhost, without an admin token.
INSECURE_ADMIN = ["--insecure-admin", "true"]


@contextlib.contextmanager
def fleet(run_dir: Path, processes: bool) -> Iterator[dict[str, str]]:
    """Yields the address of each service by name."""
    if processes:
        # Models go to the run's own directory, never to the one `make up` keeps.
        extra = {"predictor": ["--model-dir", str(run_dir / "models"), *INSECURE_ADMIN]}
        with Constellation(run_dir, extra_args=extra) as constellation:
            yield {name: constellation.addr(name) for name in NAMES}
        return
    local = ["--host", "127.0.0.1", "--port", "0"]
    servers: list[RunningServer] = []
    try:
        servers.append(fs_server.start(fs_config.load(local)))
        servers.append(
            pr_server.start(pr_config.load([*local, "--model-dir", str(run_dir / "models"), *INSECURE_ADMIN]))
        )
        addrs = {name: f"127.0.0.1:{s.port}" for name, s in zip(NAMES, servers, strict=False)}
        servers.append(
            rt_server.start(
                rt_config.load(
                    [*local, "--feature-store-addr", addrs["feature_store"], "--predictor-addr", addrs["predictor"]]
                )
            )
        )
        addrs["router"] = f"127.0.0.1:{servers[-1].port}"
        yield addrs
    finally:
        for running in reversed(servers):
            running.stop(0)


def _serve(service: str, args: list[str], pipe: Connection) -> None:
    """In a child process: starts one service on the given flags, reports
    its port, and stops it when told to."""
    quiet()
    config = importlib.import_module(f"services.{service}.config")
    server = importlib.import_module(f"services.{service}.server")
    running = server.start(config.load(args))
    pipe.send(running.port)
    pipe.recv()
    running.stop(0)


@contextlib.contextmanager
def service_process(service: str, args: list[str], separate: bool = True) -> Iterator[str]:
    """One service in a process of its own, as in production, so that
    what the benchmark does in this process never holds the server's GIL
    (or, when not `separate`, in this process, for the smoke run). Yields
    its address."""
    args = [*args, "--host", "127.0.0.1", "--port", "0"]
    if not separate:
        config = importlib.import_module(f"services.{service}.config")
        server = importlib.import_module(f"services.{service}.server")
        running = server.start(config.load(args))
        try:
            yield f"127.0.0.1:{running.port}"
        finally:
            running.stop(0)
        return
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve, args=(service, args, theirs))
    process.start()
    try:
        if not ours.poll(60):
            raise RuntimeError(f"{service} did not start")
        yield f"127.0.0.1:{ours.recv()}"
        ours.send("stop")
        process.join(30)
    finally:
        if process.is_alive():
            process.kill()
