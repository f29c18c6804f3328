"""The manifests without a cluster: every overlay builds with kustomize,
every object validates against the OpenAPI schema of the pinned Kubernetes
version (offline: kubernetes-validate ships the schemas), and the rules the
project holds its manifests to are met by what is built, not by what a
file says."""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from services.common.config import ADDR_ENV, DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from tests.deploy.manifests import (
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    Obj,
    build,
    by_kind,
    grpc_port,
    pod_labels,
    pod_spec,
    selects,
    workloads,
)

pytestmark = pytest.mark.slow

SERVICES = {name.replace("_", "-"): name for name in DEFAULT_PORTS}
SHARED = {"ACE_THRESHOLD_MS", "ACE_HORIZON_S", "ACE_WINDOW_S", "ACE_WINDOW_MAX_POINTS"}
SCRAPER = {"ace.arcpoint.dev/metrics-scraper": "true"}
# The fields of the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1)
# that ACE's overlay sets, with the operator's types; no other field is allowed.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_SCHEMAS = {"monitoring.coreos.com/v1": SERVICE_MONITOR}


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def built(request: pytest.FixtureRequest) -> list[Obj]:
    return build(request.param)


@pytest.fixture(scope="module")
def kind() -> list[Obj]:
    return build(ROOT / "deploy/k8s/overlays/kind")


@pytest.fixture(scope="module")
def chaos() -> list[Obj]:
    return build(ROOT / "deploy/k8s/overlays/kind-chaos")


def test_the_overlays_are_the_cluster_its_chaos_job_and_the_prometheus_operator():
    assert [p.name for p in OVERLAYS] == ["kind", "kind-chaos", "kind-prometheus-operator"]


def test_every_object_validates_against_the_pinned_kubernetes_schema(built: list[Obj]):
    assert built
    for obj in built:
        if obj["apiVersion"] in CUSTOM_SCHEMAS:
            # The Prometheus Operator's kinds are not Kubernetes': checked
            # against the part of their CRD schema ACE uses.
            jsonschema.validate(obj, CUSTOM_SCHEMAS[obj["apiVersion"]])
            continue
        # strict: a field the schema does not know is an error too.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "template", "spec", "containers", 0, "readinessProbe", "grpc", "port"), "grpc"),
        (("spec", "template", "spec", "containers", 0, "imagePullPolicyy"), "Never"),
        (("spec", "replicas"), "two"),
    ],
)
def test_the_schema_check_catches_a_broken_object(kind: list[Obj], path: tuple[str | int, ...], value: object):
    broken = copy.deepcopy(by_kind(kind, "Deployment")["router"])
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_pod_is_locked_down_and_sized(built: list[Obj]):
    for obj, spec in workloads(built):
        name = obj["metadata"]["name"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            for kind_ in ("requests", "limits"):
                assert set(c["resources"][kind_]) == {"cpu", "memory"}, f"{name}: {kind_}"
            assert c["image"] == "ace:dev" and c["imagePullPolicy"] == "Never", name


def test_every_object_carries_the_recommended_labels(built: list[Obj]):
    for obj in built:
        if obj["kind"] in ("Namespace", "ConfigMap"):
            continue
        labels = obj["metadata"]["labels"]
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"} <= set(labels)
    for obj, _ in workloads(built):
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(pod_labels(obj))


def test_each_service_runs_its_module_with_a_named_grpc_port_and_grpc_probes(kind: list[Obj]):
    services = by_kind(kind, "Service")
    accounts = by_kind(kind, "ServiceAccount")
    seen = set()
    for obj, spec in workloads(kind):
        (container,) = spec["containers"]
        command = container["command"]
        assert command[:2] == ["python", "-m"]
        assert importlib.util.find_spec(command[2]) is not None, command
        assert spec["serviceAccountName"] in accounts
        assert spec["automountServiceAccountToken"] is False
        match = re.fullmatch(r"services\.(\w+)", command[2])
        if match is None:
            continue
        name = match.group(1)
        seen.add(name)
        port = grpc_port(container)
        assert port == DEFAULT_PORTS[name]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env[f"ACE_{name.upper()}_PORT"] == str(port), "the process must listen where the port says"
        assert container["readinessProbe"]["grpc"] == {
            "port": port,
            "service": f"ace.v1.{name.title().replace('_', '')}",
        }
        assert container["livenessProbe"]["grpc"] == {"port": port}
        assert container["startupProbe"]["grpc"] == {"port": port}
        service = services[name.replace("_", "-")]
        assert selects(service["spec"]["selector"], pod_labels(obj))
        service_port, metrics_port = service["spec"]["ports"]
        assert (service_port["name"], service_port["port"], service_port["targetPort"]) == ("grpc", port, "grpc")
        assert (metrics_port["name"], metrics_port["targetPort"]) == ("metrics", "metrics")
    assert seen == set(DEFAULT_PORTS)


def test_each_service_serves_metrics_on_a_named_port_that_scrapers_find_and_may_reach(kind: list[Obj]):
    services = by_kind(kind, "Service")
    policies = list(by_kind(kind, "NetworkPolicy").values())
    for obj, spec in workloads(kind):
        (container,) = spec["containers"]
        match = re.fullmatch(r"services\.(\w+)", container["command"][2])
        if match is None:
            continue
        name = match.group(1)
        (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
        assert port == DEFAULT_METRICS_PORTS[name]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[f"ACE_{name.upper()}_METRICS_PORT"] == str(port), "the process must serve where the port says"
        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        service = services[name.replace("_", "-")]
        assert {"name": "metrics", "port": port, "targetPort": "metrics", "appProtocol": "http"} in service["spec"][
            "ports"
        ]
        target = pod_labels(obj)
        guarding = [
            p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"]["matchLabels"], target)
        ]
        scraped = [
            rule
            for p in guarding
            for rule in p["spec"]["ingress"]
            if any(selects(peer.get("podSelector", {}).get("matchLabels", {}), SCRAPER) for peer in rule["from"])
        ]
        assert [rule["ports"] for rule in scraped] == [[{"port": "metrics"}]], f"{name}: the scraper, on metrics alone"


def test_the_service_monitor_scrapes_every_ace_service_on_its_metrics_port():
    objs = build(ROOT / "deploy/k8s/overlays/kind-prometheus-operator")
    (monitor,) = by_kind(objs, "ServiceMonitor").values()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    selected = {
        name
        for name, service in by_kind(objs, "Service").items()
        if selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        and any(p["name"] == "metrics" for p in service["spec"]["ports"])
    }
    assert selected == set(SERVICES)
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SERVICE_MONITOR)


def test_the_shared_settings_come_from_one_config_map(kind: list[Obj]):
    (config_map,) = by_kind(kind, "ConfigMap").values()
    assert set(config_map["data"]) >= SHARED
    for obj, spec in workloads(kind):
        (container,) = spec["containers"]
        if not container["command"][2].startswith("services."):
            continue
        refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
        assert refs == [config_map["metadata"]["name"]], obj["metadata"]["name"]
        assert not SHARED & {e["name"] for e in container.get("env", [])}, "set once, in the ConfigMap"


def test_the_predictor_keeps_versions_per_replica_and_is_found_by_a_headless_service(kind: list[Obj]):
    predictor = by_kind(kind, "StatefulSet")["predictor"]
    (container,) = pod_spec(predictor)["containers"]  # type: ignore[index]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (claim,) = predictor["spec"]["volumeClaimTemplates"]
    assert env["ACE_MODEL_DIR"] == mounts[claim["metadata"]["name"]]
    headless = by_kind(kind, "Service")[predictor["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    trainer = by_kind(kind, "Deployment")["trainer"]
    (trainer_container,) = pod_spec(trainer)["containers"]  # type: ignore[index]
    trainer_env = {e["name"]: e.get("value") for e in trainer_container["env"]}
    assert trainer_env["ACE_PREDICTOR_PUBLISH_ADDRS"] == f"{headless['metadata']['name']}:{DEFAULT_PORTS['predictor']}"


def test_the_trainer_trains_itself_and_the_cronjob_only_by_hand(kind: list[Obj]):
    (trainer,) = pod_spec(by_kind(kind, "Deployment")["trainer"])["containers"]  # type: ignore[index]
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["ACE_AUTO_TRAIN"] == "true"
    assert env["ACE_RETRAIN_ON_DRIFT"] == "true"
    (cron,) = by_kind(kind, "CronJob").values()
    assert cron["spec"]["suspend"] is True, "a scheduled forced publish would bypass the gate"


def test_the_trainer_cronjob_trains_on_the_feature_store_history(kind: list[Obj]):
    (cron,) = by_kind(kind, "CronJob").values()
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(cron)["containers"]  # type: ignore[index]
    assert container["command"] == ["python", "-m", "tools.train_job"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ACE_TRAINER_ADDR"] == f"trainer:{DEFAULT_PORTS['trainer']}"
    assert float(env["ACE_TRAIN_DURATION_S"]) > 0
    feature_store = by_kind(kind, "StatefulSet")["feature-store"]
    (fs,) = pod_spec(feature_store)["containers"]  # type: ignore[index]
    fs_env = {e["name"]: e.get("value") for e in fs["env"]}
    assert fs_env["ACE_HISTORY_DIR"] in {m["mountPath"] for m in fs["volumeMounts"]}


def test_the_router_keeps_one_pod_through_a_disruption(kind: list[Obj]):
    router = by_kind(kind, "Deployment")["router"]
    (pdb,) = by_kind(kind, "PodDisruptionBudget").values()
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(router))
    assert 1 <= pdb["spec"]["minAvailable"] < router["spec"]["replicas"]


def _callers(objs: list[Obj]) -> dict[str, set[str]]:
    """For each app behind a Service, the workloads whose environment names
    one of its Services: the callers the NetworkPolicies must let in, and
    the only ones in the namespace they may let in."""
    services = by_kind(objs, "Service")
    app = {name: s["spec"]["selector"]["app.kubernetes.io/name"] for name, s in services.items()}
    calls: dict[str, set[str]] = {name: set() for name in app.values()}
    for obj, spec in workloads(objs):
        for container in spec["containers"]:
            for e in container.get("env", []):
                if e["name"] in ADDR_ENV.values() or e["name"] == "ACE_PREDICTOR_PUBLISH_ADDRS":
                    host = e["value"].rsplit(":", 1)[0]
                    if host in services:
                        calls[app[host]].add(obj["metadata"]["name"])
    return calls


def _admits(policy: Obj, source: dict[str, str]) -> bool:
    for rule in policy["spec"].get("ingress", []):
        for peer in rule.get("from", []):
            if "podSelector" in peer and selects(peer["podSelector"].get("matchLabels", {}), source):
                return True
    return False


def test_network_policies_let_in_the_intended_callers_and_no_other_workload(kind: list[Obj], chaos: list[Obj]):
    objs = kind + chaos
    policies = list(by_kind(kind, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny, "a default deny of ingress"
    pods = {o["metadata"]["name"]: pod_labels(o) for o, _ in workloads(objs)}
    for service, callers in _callers(objs).items():
        target = {"app.kubernetes.io/name": service}
        guarding = [
            p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"]["matchLabels"], target)
        ]
        assert guarding, f"no policy selects the {service} pods"
        for name, labels in pods.items():
            admitted = any(_admits(p, labels) for p in guarding)
            assert admitted == (name in callers), f"{name} -> {service}: admitted {admitted}, calls {name in callers}"


def test_the_chaos_job_may_delete_only_the_pods_labelled_for_it(kind: list[Obj], chaos: list[Obj]):
    (role,) = by_kind(chaos, "Role").values()
    assert not by_kind(chaos, "ClusterRole") and not by_kind(chaos, "ClusterRoleBinding")
    labelled = [
        f"{s['metadata']['name']}-{i}"
        for s in by_kind(kind, "StatefulSet").values()
        if pod_labels(s).get("ace.arcpoint.dev/chaos") == "allowed"
        for i in range(s["spec"]["replicas"])
    ]
    for obj, _ in workloads(kind):
        if obj["kind"] != "StatefulSet":
            assert "ace.arcpoint.dev/chaos" not in pod_labels(obj), "only pods with stable names can be named in RBAC"
    verbs = {(tuple(r["resources"]), v, tuple(r.get("resourceNames", []))) for r in role["rules"] for v in r["verbs"]}
    assert verbs == {
        (("pods",), "get", ()),
        (("pods",), "list", ()),
        (("pods",), "delete", tuple(sorted(labelled))),
    }
    (job,) = by_kind(chaos, "Job").values()
    spec = pod_spec(job)
    assert spec is not None and job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] <= 900
    account = f"system:serviceaccount:{job['metadata']['namespace']}:{spec['serviceAccountName']}"
    (policy,) = by_kind(chaos, "ValidatingAdmissionPolicy").values()
    assert account in policy["spec"]["matchConditions"][0]["expression"]
    assert (
        "oldObject.metadata.labels['ace.arcpoint.dev/chaos'] == 'allowed'"
        in policy["spec"]["validations"][0]["expression"]
    )
    (binding,) = by_kind(chaos, "ValidatingAdmissionPolicyBinding").values()
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}


def test_the_namespace_enforces_the_restricted_pod_security_standard(kind: list[Obj]):
    (namespace,) = by_kind(kind, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_kind_cluster_pins_the_node_image_of_the_validated_version():
    cluster = (ROOT / "deploy/kind/cluster.yaml").read_text()
    images = set(re.findall(r"image: (\S+)", cluster))
    (image,) = images
    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert re.fullmatch(rf"kindest/node:v{re.escape(minor)}\.\d+@sha256:[0-9a-f]{{64}}", image)


def test_the_dockerfile_installs_the_lock_file_before_the_sources_and_drops_root():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    steps = [line for line in lines if not line.startswith("#")]
    index = {line: i for i, line in enumerate(steps)}
    copy_requirements = index["COPY requirements.txt ./"]
    install = index["RUN pip install --no-compile -r requirements.txt"]
    sources = [i for line, i in index.items() if line.startswith("COPY ") and "requirements" not in line]
    assert copy_requirements < install < min(sources)
    user = [line for line in steps if line.startswith("USER ")]
    assert user == ["USER 10001:10001"]
    assert steps[-1] == 'CMD ["python", "-m", "services.router"]'
    copied = {line.split()[1].rstrip("/") for line in steps if line.startswith("COPY ")}
    assert copied == {"requirements.txt", "ace", "services", "tools"}


PROBE = """
import importlib, importlib.abc, importlib.metadata, sys
allowed, modules = set(sys.argv[1].split(",")), sys.argv[2].split(",")
owners = importlib.metadata.packages_distributions()
class OnlyTheImage(importlib.abc.MetaPathFinder):
    # What the image lacks cannot be imported, as in the image: optional
    # imports fall back, required ones fail.
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ("ace", "services", "tools"):
            return None
        dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
        if not dists or dists & allowed:  # no distribution: the interpreter's own
            return None
        raise ModuleNotFoundError(f"{name} (from {sorted(dists)}) is not in the image")
sys.meta_path.insert(0, OnlyTheImage())
for m in modules:
    importlib.import_module(m)
"""


def test_what_the_image_runs_imports_with_only_the_runtime_requirements():
    """Every module the manifests run, imported in a fresh interpreter that
    can see only the distributions requirements.txt pins (all the image
    installs): one that needs anything else fails here, not in a pod."""
    modules = [f"services.{name}.__main__" for name in DEFAULT_PORTS] + ["tools.train_job", "tools.chaos"]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(pinned)), ",".join(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_dockerignore_keeps_the_build_context_to_what_is_copied():
    lines = [x for x in (ROOT / ".dockerignore").read_text().splitlines() if x and not x.startswith("#")]
    assert lines[0] == "*"
    assert {x.removeprefix("!").rstrip("/") for x in lines if x.startswith("!")} == {
        "requirements.txt",
        "ace",
        "services",
        "tools",
    }


def test_manifest_files_are_one_per_service():
    base = ROOT / "deploy/k8s/base"
    files = {p.stem for p in base.glob("*.yaml")}
    assert set(SERVICES) <= files
    assert Path(base / "kustomization.yaml").exists()
