"""Real loopback receivers for delivery tests: an HTTP(S) recorder, a TLS-terminating proxy, GitHub, SMTP.

Apprise sends Slack webhooks to https://hooks.slack.com and Teams workflows to their https host, whatever
else the URL says. ``InterceptingProxy`` lets those requests leave unchanged: the test sets ``HTTPS_PROXY``
to it and ``REQUESTS_CA_BUNDLE`` to its CA, it answers ``CONNECT`` with TLS under a certificate for the real
host names, and it records what arrives inside the tunnel.
"""

from __future__ import annotations

import base64
import http.server
import json
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.sim.tls import make_tls_files


@dataclass
class Request:
    method: str
    host: str
    path: str
    headers: dict[str, str]
    body: bytes
    tunnel: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


Response = tuple[int, dict[str, str], Any]
Responder = Callable[[Request], Response]


def _ok(_: Request) -> Response:
    return 200, {}, {"ok": True}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    tunnel = ""

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Request(self.command, self.headers.get("Host", ""), self.path, dict(self.headers.items()), body,
                          self.tunnel)
        with self.server.lock:
            self.server.requests.append(request)
        status, headers, payload = self.server.respond(request)
        data = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        kind = "text/plain" if isinstance(payload, bytes) else "application/json"
        for key, value in {"Content-Type": kind, **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def do_CONNECT(self) -> None:
        if self.server.tls is None:
            self.send_error(405)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.connection = self.server.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = self.connection.makefile("wb", 0)
        self.tunnel = self.path
        self.close_connection = False  # http.client tunnels with an HTTP/1.0 CONNECT; keep the socket for TLS

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Responder, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond, self.tls = respond, tls
        self.requests: list[Request] = []
        self.lock = threading.Lock()


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request; ``respond`` decides the answer."""

    def __init__(self, respond: Responder = _ok, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(respond, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Request]:
        return list(self._server.requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def webhook_answer(request: Request) -> Response:
    """What the services answer a good webhook post: Slack a plain ``ok``, Power Automate 202 Accepted."""
    if request.host.startswith("hooks.slack.com"):
        return 200, {}, b"ok"
    return 202, {}, None


class InterceptingProxy(Receiver):
    """An HTTPS proxy that terminates the tunnel itself, posing as ``hosts`` with a per-test CA."""

    def __init__(self, directory: Path, hosts: tuple[str, ...], respond: Responder = webhook_answer) -> None:
        self.tls_files = make_tls_files(directory, hosts)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_files.cert, self.tls_files.key)
        super().__init__(respond, context)


@dataclass
class FakeGitHub:
    """The Issues endpoints Testpilot uses, with GitHub's shapes: label filter, pagination by Link header."""

    repository: str
    token: str
    base_url: str = ""
    issues: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[str]] = field(default_factory=dict)
    _clock: int = 0

    def add(self, title: str, body: str, labels: list[str], state: str = "open", state_reason: str | None = None
            ) -> dict[str, Any]:
        self._clock += 1
        number = len(self.issues) + 1
        issue = {"number": number, "title": title, "body": body, "labels": [{"name": n} for n in labels],
                 "state": state, "state_reason": state_reason, "updated_at": self._clock,
                 "html_url": f"https://github.com/{self.repository}/issues/{number}"}
        self.issues.append(issue)
        return issue

    def __call__(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials"}
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        base = f"/repos/{self.repository}/issues"
        rest = parts.path.removeprefix(base).strip("/").split("/") if parts.path.startswith(base) else None
        if rest == [""] and request.method == "GET":
            return self._list(base, query)
        if rest == [""] and request.method == "POST":
            data = request.json()
            return 201, {}, self.add(data["title"], data["body"], data.get("labels", []))
        if rest and rest[0].isdigit() and int(rest[0]) <= len(self.issues):
            issue = self.issues[int(rest[0]) - 1]
            self._clock += 1
            issue["updated_at"] = self._clock
            if rest[1:] == ["comments"] and request.method == "POST":
                self.comments.setdefault(issue["number"], []).append(request.json()["body"])
                return 201, {}, {"id": self._clock, "body": request.json()["body"]}
            if rest[1:] == [] and request.method == "PATCH":
                issue.update(request.json())
                issue["state_reason"] = "reopened" if issue["state"] == "open" else issue["state_reason"]
                return 200, {}, issue
        return 404, {}, {"message": "Not Found"}

    def _list(self, base: str, query: dict[str, str]) -> Response:
        labels = set(filter(None, query.get("labels", "").split(",")))
        state = query.get("state", "open")
        found = [i for i in self.issues if labels <= {lab["name"] for lab in i["labels"]}
                 and state in ("all", i["state"])]
        found.sort(key=lambda i: i["updated_at"], reverse=query.get("direction", "desc") == "desc")
        per_page, page = min(int(query.get("per_page", 30)), 100), int(query.get("page", 1))
        headers = {}
        if page * per_page < len(found):
            headers["Link"] = f'<{self.base_url}{base}?{urlencode({**query, "page": page + 1})}>; rel="next"'
        return 200, headers, found[(page - 1) * per_page:page * per_page]


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpReceiver

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 loopback ESMTP")
        message: dict[str, Any] = {"rcpt": []}
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250-loopback")
                self._say("250 AUTH PLAIN")
            elif verb == "AUTH":
                message["login"] = base64.b64decode(command.split()[2]).split(b"\0")[1].decode()
                self._say("235 2.7.0 authenticated")
            elif verb == "MAIL":
                message["from"] = command
                self._say("250 ok")
            elif verb == "RCPT":
                message["rcpt"].append(command)
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk)
                message["data"] = b"".join(data).decode()
                self.server.messages.append(message)
                message = {"rcpt": [], "login": message.get("login")}
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


class SmtpReceiver(socketserver.ThreadingTCPServer):
    """Just enough ESMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA) to record what Apprise sends."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.messages: list[dict[str, Any]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> SmtpReceiver:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
