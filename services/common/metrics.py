"""Each service's Prometheus endpoint: one registry per server (so two
servers in one process, as in tests, never share a metric), served over
plain HTTP on its own port at /metrics, beside any read-only pages the
service adds (the router's risk board).

Metrics follow Prometheus' conventions: base units (seconds, not
milliseconds), `_total` counters, and labels of bounded cardinality. A
backend id is a label only on the per-backend gauges, and only for up to
MAX_LABELLED_BACKENDS backends; fleet-wide counts carry no backend id."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.process_collector import ProcessCollector

_log = structlog.get_logger("metrics")

# Backends that get series of their own on a per-backend gauge; beyond it the
# riskiest (or, for the feature store, the emptiest) are kept. 200 backends x
# a handful of gauges stays well inside what one Prometheus scrapes cheaply.
MAX_LABELLED_BACKENDS = 200

# The `_created` series of every counter and histogram double the series for
# a figure no ACE dashboard or rule reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A page the metrics port serves besides /metrics: its content type and body.
Page = Callable[[], tuple[str, bytes]]


def new_registry() -> CollectorRegistry:
    """A registry with the process' CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


@dataclass
class MetricsSetup:
    """What start_server needs to serve metrics: the port (0 picks one),
    the registry the service's collectors are in, extra pages by path, and
    observers of unary responses by full method name (see grpc_metrics)."""

    port: int
    registry: CollectorRegistry = field(default_factory=new_registry)
    pages: Mapping[str, Page] = field(default_factory=dict)
    observers: Mapping[str, Callable[[Any], None]] = field(default_factory=dict)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # A scrape every few seconds would drown the service's own log.
        pass


def _server_class(host: str) -> type[WSGIServer]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingWSGIServer):
        address_family = family

    return Server


class MetricsServer:
    """/metrics and the pages, in a daemon thread; stop() closes the port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, pages: Mapping[str, Page]) -> None:
        metrics_app = make_wsgi_app(registry)
        self._pages = dict(pages)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            page = self._pages.get(path)
            if page is None:
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                known = ", ".join(sorted(["/metrics", *self._pages]))
                return [f"not found; this port serves {known}\n".encode()]
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
                return [b""]
            try:
                content_type, body = page()
            except Exception:  # noqa: BLE001 - a page that fails must not take the port down
                _log.exception("page_failed", path=path)
                start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"internal error\n"]
            start_response("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store")])
            return [body]

        bind = host.strip("[]")
        self._httpd = make_server(bind, port, app, _server_class(bind), handler_class=_Quiet)
        self.port: int = self._httpd.server_address[1]
        # shutdown() waits for the loop's next poll: 0.1 s, not the default
        # 0.5 s, keeps a service's stop (and every test's teardown) short.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
