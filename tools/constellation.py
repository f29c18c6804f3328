"""Starts the four services as separate processes on localhost, wires their
addresses together, and stops them gracefully. Used by `make run` and
`make up`, and by the end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from services.common.config import ADDR_ENV

ORDER = ("feature_store", "predictor", "router", "trainer")
READY_TIMEOUT_S = 60.0


class StartError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[str]
    log_path: Path
    port: int = 0
    listening: threading.Event = field(default_factory=threading.Event)

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
    ) -> None:
        self.run_dir = run_dir
        self.ports = ports or dict.fromkeys(ORDER, 0)
        self.extra_args = extra_args or {}
        self.env = env or {}
        self.processes: dict[str, Process] = {}
        # Exit code of each service after stop(); 0 means it stopped gracefully.
        self.exit_codes: dict[str, int | None] = {}

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.processes[name].port}"

    def start(self) -> Constellation:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            for name in ORDER:
                self._start_one(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_one(self, name: str) -> None:
        env = {**os.environ, **self.env, "ACE_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        for other, proc in self.processes.items():
            env[ADDR_ENV[other]] = f"127.0.0.1:{proc.port}"
        args = [sys.executable, "-m", f"services.{name}", "--host", "127.0.0.1", "--port", str(self.ports[name])]
        args += self.extra_args.get(name, [])
        log_path = self.run_dir / "logs" / f"{name}.log"
        log_path.write_text("")
        popen = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        proc = Process(name, popen, log_path)
        self.processes[name] = proc
        threading.Thread(target=proc._pump, name=f"log-{name}", daemon=True).start()
        if not proc.listening.wait(READY_TIMEOUT_S) or proc.port == 0:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
            raise StartError(f"{name} did not start (exit code {popen.poll()}); its log ends:\n{tail}")

    def stop(self, grace_s: float = 10.0) -> dict[str, int | None]:
        """SIGTERM to every service (callers first), then their exit codes.
        A service that does not stop within the grace period is killed."""
        codes: dict[str, int | None] = {}
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
        self.processes.clear()
        self.exit_codes.update(codes)
        return codes

    def __enter__(self) -> Constellation:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
