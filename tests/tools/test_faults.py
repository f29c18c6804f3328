"""The two ways the chaos run kills a service, without killing anything
real: local kills through an injected kill function, Kubernetes deletions
against a small fake API server on loopback."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tools.faults import FaultError, KubeApi, KubernetesFaults, LocalFaults


def test_local_faults_kill_the_pid_of_the_pid_file(tmp_path: Path):
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "predictor.pid").write_text("4242\n")
    killed: list[tuple[int, int]] = []
    faults = LocalFaults(tmp_path, kill=lambda pid, sig: killed.append((pid, sig)))
    assert faults.kill("predictor") == ["pid 4242"]
    assert killed == [(4242, signal.SIGKILL)]


def test_local_faults_say_what_is_missing(tmp_path: Path):
    with pytest.raises(FaultError, match="no pid of router"):
        LocalFaults(tmp_path).kill("router")
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "router.pid").write_text("4242")

    def gone(pid: int, sig: int) -> None:
        raise ProcessLookupError

    with pytest.raises(FaultError, match=r"router \(pid 4242\) is not running"):
        LocalFaults(tmp_path, kill=gone).kill("router")


@dataclass
class FakeApi:
    """What the fake API server holds and what it was asked."""

    url: str = ""
    pods: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str, str, Any]] = field(default_factory=list)
    deny_delete: bool = False


def handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, code: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            api.seen.append(("GET", self.path, self.headers["Authorization"], None))
            self._answer(200, {"kind": "PodList", "items": api.pods})

        def do_DELETE(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            api.seen.append(("DELETE", self.path, self.headers["Authorization"], body))
            if api.deny_delete:
                self._answer(403, {"kind": "Status", "reason": "Forbidden"})
            else:
                self._answer(200, {"kind": "Pod"})

    return Handler


@pytest.fixture
def api() -> Iterator[FakeApi]:
    state = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    # shutdown() waits out the poll interval, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def pod(name: str, chaos: bool = True) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "predictor"}
    if chaos:
        labels["ace.arcpoint.dev/chaos"] = "allowed"
    return {"metadata": {"name": name, "labels": labels}}


def faults(api: FakeApi) -> KubernetesFaults:
    return KubernetesFaults(KubeApi(api.url, "the-token", None), "ace")


def test_kubernetes_faults_delete_every_labelled_pod_of_the_service_at_once(api: FakeApi):
    api.pods = [pod("predictor-0"), pod("predictor-1")]
    assert faults(api).kill("predictor") == ["pod predictor-0", "pod predictor-1"]
    listing, *deletions = api.seen
    assert listing[:3] == (
        "GET",
        "/api/v1/namespaces/ace/pods?labelSelector=app.kubernetes.io/name%3Dpredictor%2Cace.arcpoint.dev/chaos%3Dallowed",
        "Bearer the-token",
    )
    assert [(d[0], d[1], d[3]["gracePeriodSeconds"]) for d in deletions] == [
        ("DELETE", "/api/v1/namespaces/ace/pods/predictor-0", 0),
        ("DELETE", "/api/v1/namespaces/ace/pods/predictor-1", 0),
    ]


def test_kubernetes_faults_refuse_a_pod_without_the_chaos_label(api: FakeApi):
    api.pods = [pod("predictor-0", chaos=False)]
    with pytest.raises(FaultError, match="refusing to delete pod predictor-0"):
        faults(api).kill("predictor")
    assert [s[0] for s in api.seen] == ["GET"]


def test_kubernetes_faults_report_no_pod_and_a_refusal(api: FakeApi):
    with pytest.raises(FaultError, match="no pod of feature-store labelled"):
        faults(api).kill("feature_store")
    api.pods = [pod("predictor-0")]
    api.deny_delete = True
    with pytest.raises(FaultError, match="HTTP 403"):
        faults(api).kill("predictor")


def test_outside_a_cluster_kubernetes_faults_say_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(FaultError, match="inside the cluster"):
        KubeApi.in_cluster()
