"""How the chaos run kills a service: one small interface, two ways.

- LocalFaults kills the process of a service that `make up` (or
  `make chaos-local`) supervises, found by its pid file; the supervisor
  starts it again, as a Deployment would.
- KubernetesFaults deletes the service's pods through the API server with
  the pod's own service account token. It asks only for pods that carry the
  chaos label, and refuses any pod without it, so that even a broader Role
  would not widen what it touches.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

CHAOS_LABEL = "ace.arcpoint.dev/chaos"
CHAOS_VALUE = "allowed"
NAME_LABEL = "app.kubernetes.io/name"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class FaultError(RuntimeError):
    """A fault could not be injected."""


class Faults(Protocol):
    def kill(self, service: str) -> list[str]:
        """Kills every instance of the service (feature_store, predictor);
        returns what was killed, for the report."""
        ...


class LocalFaults:
    """SIGKILL to the pid in <run_dir>/pids/<service>.pid."""

    def __init__(self, run_dir: Path, kill: Callable[[int, int], None] = os.kill) -> None:
        self.run_dir = run_dir
        self._kill = kill

    def kill(self, service: str) -> list[str]:
        path = self.run_dir / "pids" / f"{service}.pid"
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise FaultError(f"no pid of {service} in {path}: is `make up` running with this run dir?") from exc
        try:
            self._kill(pid, signal.SIGKILL)
        except ProcessLookupError as exc:
            raise FaultError(f"{service} (pid {pid}) is not running") from exc
        return [f"pid {pid}"]


class KubeApi:
    """The few calls the chaos Job makes to the API server, over HTTPS with
    the service account's token and CA. base_url, token and context are
    injectable for tests."""

    def __init__(self, base_url: str, token: str, context: ssl.SSLContext | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._context = context

    @classmethod
    def in_cluster(cls) -> KubeApi:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise FaultError("KUBERNETES_SERVICE_HOST is not set: --faults kubernetes runs inside the cluster")
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", (SERVICE_ACCOUNT / "token").read_text().strip(), context)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._context) as response:
                doc: dict[str, Any] = json.loads(response.read())
                return doc
        except urllib.error.HTTPError as exc:
            raise FaultError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise FaultError(f"{method} {path}: {exc}") from exc


class KubernetesFaults:
    """Deletes, with no grace period (a crash, not a drain), every pod of
    the service in the namespace that is labelled for chaos."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    @classmethod
    def in_cluster(cls) -> KubernetesFaults:
        return cls(KubeApi.in_cluster(), (SERVICE_ACCOUNT / "namespace").read_text().strip())

    def kill(self, service: str) -> list[str]:
        app = service.replace("_", "-")
        selector = urllib.parse.quote(f"{NAME_LABEL}={app},{CHAOS_LABEL}={CHAOS_VALUE}")
        pods = self.api.call("GET", f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}")
        killed: list[str] = []
        for pod in pods.get("items", []):
            meta = pod.get("metadata", {})
            if meta.get("labels", {}).get(CHAOS_LABEL) != CHAOS_VALUE:
                raise FaultError(f"refusing to delete pod {meta.get('name')}: it is not labelled {CHAOS_LABEL}")
            name = str(meta["name"])
            self.api.call(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{urllib.parse.quote(name)}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
            )
            killed.append(f"pod {name}")
        if not killed:
            raise FaultError(f"no pod of {app} labelled {CHAOS_LABEL}={CHAOS_VALUE} in namespace {self.namespace}")
        return killed
