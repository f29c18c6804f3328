"""The manifests run as local processes: each container's command, arguments
and environment exactly as kustomize builds them (the ConfigMap's settings
included), one process per replica, each Service name resolved to the local
port of the replica(s) behind it and each volume to a directory of its own.
Then every probe must pass over gRPC health, the trainer CronJob's command
must train on the feature store's history and publish to both predictor
replicas, and a Decide through the router must be answered on a forecast.
A wrong port, flag, variable, probe or Service name fails here before any
cluster sees it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, router_pb2_grpc
from services.common import admin, synthetic
from services.common.points import to_message
from tests.deploy.manifests import ROOT, Obj, build, by_kind, grpc_port, selects, workloads
from tools.constellation import Process

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 60.0
HISTORY = synthetic.random_history(8, 3, 2 * 3600.0)


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile: what every container starts with."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@dataclass
class Replica:
    workload: str
    index: int
    process: Process
    workdir: Path

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.process.port}"


@dataclass
class Launch:
    objs: list[Obj]
    tmp: Path
    replicas: dict[str, list[Replica]] = field(default_factory=dict)

    def services(self) -> dict[str, Obj]:
        return by_kind(self.objs, "Service")

    def backing(self, service: Obj) -> str:
        """The workload a Service selects."""
        (name,) = [
            str(o["metadata"]["name"])
            for o, _ in workloads(self.objs)
            if o["kind"] in ("Deployment", "StatefulSet")
            and selects(service["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])
        ]
        return name

    def resolve(self, value: str) -> str:
        """A Service's host:port as the local address(es) behind it: a
        headless Service is every replica, a ClusterIP one the first."""
        host, _, port = value.rpartition(":")
        service = self.services().get(host)
        if service is None:
            return value
        grpc_ports = [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
        assert grpc_ports == [int(port)], f"{value}: not the Service's grpc port"
        replicas = self.replicas[self.backing(service)]
        if service["spec"].get("clusterIP") == "None":
            return ",".join(r.addr for r in replicas)
        return replicas[0].addr

    def depends_on(self, spec: Obj) -> set[str]:
        needed = set()
        for container in spec["containers"]:
            for e in container.get("env", []):
                host = str(e.get("value", "")).rpartition(":")[0]
                if host in self.services():
                    needed.add(self.backing(self.services()[host]))
        return needed

    def environment(self, spec: Obj, container: Obj, volumes: dict[str, Path]) -> dict[str, str]:
        config_maps = by_kind(self.objs, "ConfigMap")
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **image_env()}
        for source in container.get("envFrom", []):
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        # The ports the container listens on (grpc, metrics): free ones here.
        listen = {str(p["containerPort"]) for p in container.get("ports", [])}
        secrets = {v["name"]: self.secret(v["secret"]["secretName"]) for v in spec.get("volumes", []) if "secret" in v}
        mounts = {
            m["mountPath"]: secrets.get(m["name"]) or volumes[m["name"]] for m in container.get("volumeMounts", [])
        }
        for e in container.get("env", []):
            assert "valueFrom" not in e, "only literal values and the ConfigMap are wired here"
            value = str(e["value"])
            if e["name"].endswith("_PORT") and value in listen:
                value = "0"  # a free port; the process reports the one it got
            elif value in mounts:
                value = str(mounts[value])
            elif (mount := next((m for m in mounts if value.startswith(m + "/")), None)) is not None:
                value = str(mounts[mount] / value.removeprefix(mount + "/"))  # a file in a mounted volume
            else:
                value = ",".join(self.resolve(v) for v in value.split(","))
            env[e["name"]] = value
        return env

    def secret(self, name: str) -> Path:
        """The Secret `name` as a directory every pod mounting it shares: the
        one ACE reads (ace-admin) holds a random admin token, as `make
        deploy` creates it."""
        path = self.tmp / "secrets" / name
        if not path.exists():
            path.mkdir(parents=True)
            admin.write_token(path / "token")
        return path

    def volumes(self, obj: Obj, spec: Obj, replica: int) -> dict[str, Path]:
        names = [v["name"] for v in spec.get("volumes", [])]
        names += [c["metadata"]["name"] for c in obj["spec"].get("volumeClaimTemplates", [])]
        paths = {name: self.tmp / f"{obj['metadata']['name']}-{replica}" / name for name in names}
        for path in paths.values():
            path.mkdir(parents=True)
        return paths

    def command(self, container: Obj) -> list[str]:
        command = [*container["command"], *container.get("args", [])]
        assert command[0] == "python"
        return [sys.executable, *command[1:]]

    def start(self, obj: Obj, spec: Obj) -> None:
        name = obj["metadata"]["name"]
        (container,) = spec["containers"]
        started = []
        for i in range(obj["spec"]["replicas"]):
            workdir = self.tmp / f"cwd-{name}-{i}"
            workdir.mkdir()
            env = self.environment(spec, container, self.volumes(obj, spec, i))
            popen = subprocess.Popen(
                self.command(container),
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            process = Process(f"{name}-{i}", popen, self.tmp / f"{name}-{i}.log")
            process.start_pump()
            started.append(Replica(name, i, process, workdir))
        self.replicas[name] = started
        for replica in started:
            assert replica.process.listening.wait(READY_TIMEOUT_S) and replica.process.port, (
                f"{replica.process.name} did not listen: {replica.process.log_path.read_text()[-2000:]}"
            )

    def start_all(self) -> None:
        pending = {o["metadata"]["name"]: (o, s) for o, s in workloads(self.objs) if o["kind"] != "CronJob"}
        while pending:
            ready = [n for n, (_, s) in pending.items() if self.depends_on(s) <= set(self.replicas)]
            assert ready, f"a dependency cycle among {sorted(pending)}"
            for name in sorted(ready):
                self.start(*pending.pop(name))

    def stop_all(self) -> dict[str, int | None]:
        everyone = [r for replicas in self.replicas.values() for r in replicas]
        for r in everyone:
            if r.process.popen.poll() is None:
                r.process.popen.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for r in everyone:
            try:
                codes[r.process.name] = r.process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.process.popen.kill()
                codes[r.process.name] = r.process.popen.wait()
            r.process.close()
        return codes


def health(addr: str, service: str, want: int = health_pb2.HealthCheckResponse.SERVING) -> None:
    """Waits, on the Watch stream rather than by polling, until `service`
    reports `want`; fails after READY_TIMEOUT_S."""
    with grpc.insecure_channel(addr) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=READY_TIMEOUT_S
        )
        for reply in watch:
            if reply.status == want:
                watch.cancel()
                return
            if reply.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
                watch.cancel()
                pytest.fail(f"{addr} knows no health service {service!r}: the probe names a wrong one")
    pytest.fail(f"{addr} {service!r} never reported {want}")


def probes(container: Obj) -> Iterator[tuple[str, str]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]["grpc"]
        assert probe["port"] == grpc_port(container), f"{kind} probes another port"
        yield kind, probe.get("service", "")


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launch]:
    launch = Launch(build(ROOT / "deploy/k8s/overlays/kind"), tmp_path)
    try:
        launch.start_all()
        yield launch
    finally:
        codes = launch.stop_all()
    assert set(codes.values()) == {0}, f"not every process stopped gracefully on SIGTERM: {codes}"


@pytest.mark.timeout(240)
def test_the_manifests_run_probe_train_and_decide(launched: Launch):
    workloads_ = {o["metadata"]["name"]: (o, s) for o, s in workloads(launched.objs)}
    assert sorted(launched.replicas) == ["feature-store", "predictor", "router", "trainer"]

    # Every probe but the predictors' readiness passes at once: a predictor
    # is ready only with a model.
    for name, replicas in launched.replicas.items():
        (container,) = workloads_[name][1]["containers"]
        for kind, service in probes(container):
            if not (name == "predictor" and kind == "readinessProbe"):
                for r in replicas:
                    health(r.addr, service)
    predictor_ready = dict(probes(workloads_["predictor"][1]["containers"][0]))["readinessProbe"]
    for r in launched.replicas["predictor"]:
        health(r.addr, predictor_ready, want=health_pb2.HealthCheckResponse.NOT_SERVING)

    # A telemetry source feeds the feature store through its Service.
    feature_store = launched.resolve("feature-store:50051")
    with grpc.insecure_channel(feature_store) as channel:
        stub = feature_store_pb2_grpc.FeatureStoreStub(channel)
        reply = stub.Ingest(feature_store_pb2.IngestRequest(points=[to_message(p) for p in HISTORY.points]))
    assert reply.accepted == len(HISTORY.points)

    # The CronJob's container, run by hand as `kubectl create job --from` would.
    (cron_spec,) = [s for o, s in workloads(launched.objs) if o["kind"] == "CronJob"]
    (container,) = cron_spec["containers"]
    job_cwd = launched.tmp / "cwd-train"
    job_cwd.mkdir()
    done = subprocess.run(
        launched.command(container),
        env=launched.environment(cron_spec, container, {}),
        cwd=job_cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "feature store history (the last 86400 s)" in done.stdout
    published = re.search(r"version (\S+) published to 2 predictor replica\(s\)", done.stdout)
    assert published, done.stdout
    for r in launched.replicas["predictor"]:
        health(r.addr, predictor_ready)

    # A proxy asks the router, through its Service, once the router has
    # seen the model's forecasts (they come with the next telemetry).
    with grpc.insecure_channel(feature_store) as channel:
        last = HISTORY.points[-1].observed_at
        step = [p._replace(observed_at=last + 10) for p in HISTORY.points if p.observed_at == last]
        feature_store_pb2_grpc.FeatureStoreStub(channel).Ingest(
            feature_store_pb2.IngestRequest(points=[to_message(p) for p in step])
        )
    with grpc.insecure_channel(launched.resolve("router:50053")) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        table = router.WatchRoutingTable(router_pb2.WatchRoutingTableRequest(), timeout=READY_TIMEOUT_S)
        for message in table:
            if message.model_version == published.group(1):
                table.cancel()
                break
        decision = router.Decide(router_pb2.DecideRequest(request_id="manifest-launch"), timeout=5)
    assert decision.backend_id in {b.backend_id for b in HISTORY.backends}
    # A first model on a fleet has not yet been scored on its labels: the
    # predictor's trust gate keeps its forecast in shadow.
    assert not message.model_proven and "not scored" in message.trust_reason
    assert decision.basis == router_pb2.MODEL_UNPROVEN
    assert "not yet proven" in decision.reason

    # Read-only root filesystem: nothing was written outside the volumes.
    for replicas in launched.replicas.values():
        for r in replicas:
            assert not any(r.workdir.iterdir()), f"{r.process.name} wrote into its working directory"
    assert not any(job_cwd.iterdir())
