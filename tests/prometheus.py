"""A real Prometheus (Debian's `prometheus` binary, which `make test`
installs) on a free port, scraping the given targets every second and
evaluating ACE's alert rules, for the tests that check what an operator
would see."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "ace-rules.yml"
READY_TIMEOUT_S = 60.0


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: `make test` installs Debian's prometheus package (make system-packages)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            doc = json.loads(response.read())
        if doc.get("status") != "success":
            raise RuntimeError(f"{path}: {doc}")
        return doc["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector: each element's labels and value."""
        data = self.get("/api/v1/query", query=promql)
        return [{"labels": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def wait_for(
        self, promql: str, holds: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """Polls the query until `holds` says yes; its last answer either way.
        A bound on waiting, not a timing assertion: the caller asserts."""
        deadline = time.monotonic() + timeout_s
        result = self.query(promql)
        while not holds(result) and time.monotonic() < deadline:
            time.sleep(0.5)
            result = self.query(promql)
        return result


@contextmanager
def running(workdir: Path, targets: Mapping[str, int]) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<port>/metrics of each job in
    `targets`, every second, with ACE's rules evaluated every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    scrape = [
        {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in targets.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(RULES)],
        "scrape_configs": scrape,
    }
    # JSON is YAML: no YAML writer needed.
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        server = Prometheus(port)
        _wait_ready(server, process, workdir)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(server: Prometheus, process: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    tail = (workdir / "prometheus.log").read_text()[-3000:]
    raise RuntimeError(f"prometheus did not become ready (exit code {process.poll()}):\n{tail}")
