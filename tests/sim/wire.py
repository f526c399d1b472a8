"""The HTTP plumbing both simulators share: a threaded loopback server that hands plain requests to an app.

Hand-written on the standard library on purpose: the Proxmox simulator must put error text into
the HTTP *reason phrase* (proxmoxer reads it from there), which ASGI servers do not let us set.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.sim.tls import TLSFiles


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int
    body: Any = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], Response]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, url.path, parse_qsl(url.query, keep_blank_values=True),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        if self.server.latency:
            time.sleep(self.server.latency)
        try:
            response = self.server.app(request)
        except Exception as exc:  # a simulator bug must show as a 599, not hang the client
            response = Response(599, {"data": None}, reason=f"simulator bug: {exc!r}"[:200])
        payload = b"" if response.status == 204 else json.dumps(response.body).encode()
        # Reason phrases cannot carry newlines; Proxmox flattens them the same way.
        reason = (response.reason or "").replace("\r", " ").replace("\n", " ") or None
        self.send_response(response.status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, latency: float) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.latency = latency


class LoopbackServer:
    """Runs ``app`` on ``host:port`` (port 0 picks a free one) in a background thread."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 0, tls: TLSFiles | None = None,
                 latency: float = 0.0) -> None:
        self._server = _Server((host, port), app, latency)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.host, self.port = self._server.server_address[0], self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sim-{self.port}", daemon=True)

    @property
    def latency(self) -> float:
        return self._server.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._server.latency = seconds

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"
