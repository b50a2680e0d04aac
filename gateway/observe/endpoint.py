"""The HTTP endpoint of the serve process: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves HTTP at all (a liveness probe); ``/readyz``
answers 200 when every readiness check passes and 503 otherwise, with a JSON body naming the
failed checks (see :mod:`gateway.observe.readiness`); ``/metrics`` is the Prometheus exposition
(text format, or OpenMetrics when the scraper asks for it). Nothing is logged per request.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from gateway.observe.readiness import Readiness, report


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry,
                 readiness: Readiness) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.readiness = readiness


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(self.server.registry), content_type)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            status, body = report(self.server.readiness.run())
            payload = json.dumps(body, sort_keys=True).encode() + b"\n"
            self._send(status, payload, "application/json")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class MetricsServer:
    """The endpoint in a background thread; ``stop()`` closes it."""

    def __init__(self, bind_address: str, port: int, registry: CollectorRegistry,
                 readiness: Readiness) -> None:
        self._httpd = _Server((bind_address, port), registry, readiness)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="metrics-http", daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
