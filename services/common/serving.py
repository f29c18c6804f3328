"""Starting and stopping one gRPC server the same way in every service: the
error interceptor, the library health servicer, reflection, the Prometheus
endpoint, and a graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from services.common.admin import AdminAuth, AdminInterceptor
from services.common.grpc_errors import ErrorInterceptor
from services.common.grpc_metrics import GrpcMetrics
from services.common.metrics import MetricsServer, MetricsSetup
from services.common.reflection import DocumentedReflection
from services.common.tls import PLAINTEXT, Tls, add_port

_log = structlog.get_logger("serving")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class RunningServer:
    """A started server: the port it bound and the health it reports."""

    server: grpc.Server
    port: int
    service_name: str
    health: health.HealthServicer
    # Run after health says NOT_SERVING and before the server stops: end
    # endless streams here so they do not hold the grace period.
    on_closing: list[Callable[[], None]] = field(default_factory=list)
    # Run once the server has stopped: release what the service holds.
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # The HTTP port of /metrics (and the service's pages); None: no metrics.
    metrics_port: int | None = None

    def set_serving(self, serving: bool) -> None:
        """Readiness: whether the service can do its job. The server itself
        ("", what liveness probes ask) stays SERVING while it runs, so a
        predictor waiting for its first model is not restarted for it."""
        self.health.set(self.service_name, SERVING if serving else NOT_SERVING)

    def stop(self, grace_s: float) -> None:
        """Says NOT_SERVING to every health watcher, lets calls in flight
        finish within the grace period, then runs the stop hooks."""
        self.health.enter_graceful_shutdown()
        for hook in self.on_closing:
            hook()
        self.server.stop(grace_s).wait()
        for hook in self.on_stop:
            hook()


def start_server(
    *,
    host: str,
    port: int,
    service_name: str,
    register: Callable[[grpc.Server], None],
    serving: bool,
    max_workers: int = 32,
    options: Sequence[tuple[str, int]] = (),
    admin: AdminAuth | None = None,
    tls: Tls = PLAINTEXT,
    metrics: MetricsSetup | None = None,
) -> RunningServer:
    """Starts a server with the service that `register` adds, health and
    reflection. Port 0 picks a free port; the bound one is returned. Admin
    calls are refused unless `admin` holds a token (or is insecure). With a
    certificate in `tls`, the port serves TLS only. With `metrics`, every
    call is counted and timed, and the registry is served over HTTP."""
    interceptors: list[grpc.ServerInterceptor] = [AdminInterceptor(admin or AdminAuth()), ErrorInterceptor()]
    if metrics is not None:
        # Outermost: it sees the status the guard and the error mapping set.
        interceptors.insert(0, GrpcMetrics(metrics.registry, metrics.observers))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=service_name),
        interceptors=interceptors,
        options=list(options),
    )
    register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(DocumentedReflection(names), server)
    bound = add_port(server, f"{host}:{port}", tls)
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    http = None
    if metrics is not None:
        try:
            http = MetricsServer(host, metrics.port, metrics.registry, metrics.pages)
        except OSError as exc:
            server.stop(0)
            raise OSError(f"could not bind the metrics port {host}:{metrics.port}: {exc.strerror or exc}") from exc
    server.start()
    running = RunningServer(server=server, port=bound, service_name=service_name, health=health_servicer)
    if http is not None:
        running.metrics_port = http.start().port
        # After the grace period: a scraper sees the calls drain.
        running.on_stop.append(http.stop)
    health_servicer.set("", SERVING)
    running.set_serving(serving)
    return running


def serve_until_signal(running: RunningServer, grace_s: float, **listening: object) -> None:
    """Logs `listening` (with the port and the given fields), blocks until
    SIGTERM or SIGINT, then stops gracefully. The handlers are in place
    before the log line, so a supervisor that signals as soon as it reads the
    port never kills the process outright."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("shutdown_requested", signal=signal.Signals(signum).name, grace_s=grace_s)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if running.metrics_port is not None:
        listening = {"metrics_port": running.metrics_port, **listening}
    _log.info("listening", port=running.port, **listening)
    # Python runs a signal handler only when the main thread wakes, and the
    # kernel may hand SIGTERM to any thread (the metrics server's, say): a
    # wait with no timeout could then sleep through it. Waking twice a
    # second bounds that.
    while not stop.wait(0.5):
        pass
    running.stop(grace_s)
    _log.info("stopped", service=running.service_name)
