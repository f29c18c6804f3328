"""Starts the four services as separate processes on localhost, wires their
addresses together, and stops them gracefully. Used by `make run` and
`make up`, and by the end-to-end tests.

Supervised (as `make up` runs it), a service that dies is started again on
the same port after a backoff, the way a Deployment restarts a pod; each
service's current pid is in <run_dir>/pids/<name>.pid, which is what
`make chaos-local` kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from services.common import admin
from services.common.config import ADDR_ENV

ORDER = ("feature_store", "predictor", "router", "trainer")
READY_TIMEOUT_S = 60.0
# A restarted service waits this long first, doubling after each crash up to
# the cap; a service that stayed up for STABLE_S starts from the bottom again.
RESTART_BACKOFF_S = 0.25
MAX_RESTART_BACKOFF_S = 5.0
STABLE_S = 10.0


class StartError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    log_path: Path
    port: int = 0
    metrics_port: int = 0  # 0 until it listens (or when it serves no metrics)
    listening: threading.Event = field(default_factory=threading.Event)
    started_at: float = field(default_factory=time.monotonic)
    pump: threading.Thread | None = None

    def start_pump(self) -> None:
        self.pump = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self.pump.start()

    def close(self) -> None:
        """Once the process has exited: lets the pump read its log to the
        end, then closes the pipe."""
        if self.pump is not None:
            self.pump.join(10)
        if self.popen.stderr is not None:
            self.popen.stderr.close()

    def _pump(self) -> None:
        """Copies the service's log lines to its file and notes the port it
        reports once it listens."""
        assert self.popen.stderr is not None
        with self.log_path.open("a") as log:
            for line in self.popen.stderr:
                log.write(line)
                log.flush()
                if not self.listening.is_set():
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("event") == "listening":
                        self.port = int(event["port"])
                        self.metrics_port = int(event.get("metrics_port", 0))
                        self.listening.set()
        self.listening.set()  # the process ended: wake whoever waits


class Constellation:
    def __init__(
        self,
        run_dir: Path,
        *,
        ports: dict[str, int] | None = None,
        extra_args: dict[str, list[str]] | None = None,
        env: dict[str, str] | None = None,
        supervise: bool = False,
        echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.run_dir = run_dir
        self.ports = ports or dict.fromkeys(ORDER, 0)
        self.extra_args = extra_args or {}
        self.env = env or {}
        self.supervise = supervise
        self.echo = echo
        self.processes: dict[str, Process] = {}
        # Exit code of each service after stop(); 0 means it stopped gracefully.
        self.exit_codes: dict[str, int | None] = {}
        # Restarts of each service by the supervisor.
        self.restarts: dict[str, int] = dict.fromkeys(ORDER, 0)
        self._stopping = threading.Event()
        self._supervisors: list[threading.Thread] = []

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.processes[name].port}"

    def pid_path(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"

    @property
    def admin_token_file(self) -> Path:
        """The admin token every service of this run shares: the one
        ACE_ADMIN_TOKEN_FILE names, or a fresh one start() writes."""
        given = self.env.get(admin.TOKEN_FILE_ENV) or os.environ.get(admin.TOKEN_FILE_ENV)
        return Path(given) if given else self.run_dir / "admin-token"

    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata for Train and PublishModel on this run's services."""
        return admin.client_metadata(str(self.admin_token_file))

    def start(self) -> Constellation:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        if not self.admin_token_file.exists():
            admin.write_token(self.admin_token_file)
        self.env[admin.TOKEN_FILE_ENV] = str(self.admin_token_file)
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        try:
            for name in ORDER:
                self._start_one(name, self.ports[name])
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            for name in ORDER:
                thread = threading.Thread(target=self._supervise, args=(name,), name=f"supervise-{name}", daemon=True)
                thread.start()
                self._supervisors.append(thread)
        return self

    def _start_one(self, name: str, port: int, fresh_log: bool = True, metrics_port: int | None = None) -> None:
        env = {**os.environ, **self.env, "ACE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        for other, proc in self.processes.items():
            if other != name:
                env[ADDR_ENV[other]] = f"127.0.0.1:{proc.port}"
        args = [sys.executable, "-m", f"services.{name}", "--host", "127.0.0.1", "--port", str(port)]
        if metrics_port:
            args += ["--metrics-port", str(metrics_port)]
        args += self.extra_args.get(name, [])
        log_path = self.run_dir / "logs" / f"{name}.log"
        if fresh_log:
            log_path.write_text("")
        popen = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        proc = Process(name, popen, log_path)
        self.processes[name] = proc
        self.pid_path(name).write_text(f"{popen.pid}\n")
        proc.start_pump()
        if not proc.listening.wait(READY_TIMEOUT_S) or proc.port == 0:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
            raise StartError(f"{name} did not start (exit code {popen.poll()}); its log ends:\n{tail}")

    def _supervise(self, name: str) -> None:
        """Starts the service again, on its port, whenever it dies before
        stop(); waits longer after each quick crash."""
        backoff = RESTART_BACKOFF_S
        while True:
            proc = self.processes[name]
            code = proc.popen.wait()
            if self._stopping.is_set():
                return
            proc.close()
            if time.monotonic() - proc.started_at >= STABLE_S:
                backoff = RESTART_BACKOFF_S
            self.echo(f"supervisor: {name} (pid {proc.popen.pid}) exited with {code}; restarting in {backoff:g} s")
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)
            try:
                # The ports it had: a scraper and a proxy find it where it was.
                self._start_one(name, proc.port or self.ports[name], fresh_log=False, metrics_port=proc.metrics_port)
            except StartError as exc:
                self.echo(f"supervisor: {exc}")
                self.processes[name].popen.kill()  # one that hangs without listening counts as dead
                continue
            self.restarts[name] += 1
            if self._stopping.is_set():  # stop() may have missed the new process
                self.processes[name].popen.terminate()
                self.processes[name].popen.wait(READY_TIMEOUT_S)
                return
            self.echo(f"supervisor: {name} restarted (pid {self.processes[name].popen.pid}) on port {proc.port}")

    def stop(self, grace_s: float = 10.0) -> dict[str, int | None]:
        """SIGTERM to every service (callers first), then their exit codes.
        A service that does not stop within the grace period is killed."""
        codes: dict[str, int | None] = {}
        self._stopping.set()
        for name in reversed(ORDER):
            proc = self.processes.get(name)
            if proc is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for name in reversed(ORDER):
            proc = self.processes.get(name)
            if proc is None:
                continue
            try:
                codes[name] = proc.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                codes[name] = proc.popen.wait()
            proc.close()
            self.pid_path(name).unlink(missing_ok=True)
        for thread in self._supervisors:
            thread.join(READY_TIMEOUT_S + grace_s)
        self._supervisors.clear()
        self.processes.clear()
        self.exit_codes.update(codes)
        return codes

    def __enter__(self) -> Constellation:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
