"""Reading what kustomize builds: the overlays, their objects, and the pod
templates and containers of the workloads among them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
# The Kubernetes version the manifests are validated against: that of the
# node image deploy/kind/cluster.yaml pins.
KUBERNETES_VERSION = "1.36.0"

Obj = dict[str, Any]


def build(overlay: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (the client alone) is needed to build the manifests: `kubectl kustomize`"
    done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def pod_spec(obj: Obj) -> Obj | None:
    """The pod template's spec of a workload, None for other objects."""
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        return dict(spec["template"]["spec"])
    if obj["kind"] == "CronJob":
        return dict(spec["jobTemplate"]["spec"]["template"]["spec"])
    return None


def pod_labels(obj: Obj) -> dict[str, str]:
    spec = obj["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    return dict(template["metadata"]["labels"])


def workloads(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objs:
        spec = pod_spec(obj)
        if spec is not None:
            yield obj, spec


def by_kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def grpc_port(container: Obj) -> int:
    (port,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == "grpc"]
    return int(port)
