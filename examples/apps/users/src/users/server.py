"""HTTP API: ``python -m users.server --port PORT``.

``GET /health``, ``POST /login`` ({"email", "password"} -> {"token", "user_id"}), ``GET /me`` (bearer token).
Tokens are signed with ``USERS_TOKEN_SECRET``. Two demo accounts exist from the start (DEMO_USERS).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from users.store import UserStore
from users.tokens import InvalidToken, issue_token, verify_token

DEMO_USERS = [("Alice Liddell", "alice@example.com", "wonderland-42"),
              ("Bob Builder", "bob@example.com", "can-we-fix-it-7")]
DEFAULT_SECRET = "example-secret"


class UsersHandler(BaseHTTPRequestHandler):
    server: UsersServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._send(200, {"status": "ok", "users": len(self.server.store)})
        if self.path != "/me":
            return self._send(404, {"error": "not found"})
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            return self._send(401, {"error": "Unauthorized: missing bearer token"})
        try:
            user_id = verify_token(header[7:].strip(), self.server.secret, now=self.server.clock())
        except InvalidToken as exc:
            return self._send(401, {"error": str(exc)})
        user = self.server.store.get(user_id)
        if user is None:
            return self._send(401, {"error": "Invalid token: unknown user"})
        self._send(200, user.public())

    def do_POST(self) -> None:
        if self.path != "/login":
            return self._send(404, {"error": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            email, password = body["email"], body["password"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return self._send(400, {"error": "body must be a JSON object with email and password"})
        user = self.server.store.authenticate(str(email), str(password))
        if user is None:
            return self._send(401, {"error": "Unauthorized: wrong e-mail or password"})
        token = issue_token(user.id, self.server.secret, now=self.server.clock(), ttl=self.server.ttl)
        self._send(200, {"token": token, "user_id": user.id})


class UsersServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, store: UserStore, secret: str,
                 clock: Callable[[], float], ttl: float) -> None:
        super().__init__(address, UsersHandler)
        self.store, self.secret, self.clock, self.ttl = store, secret, clock, ttl


def make_server(host: str = "127.0.0.1", port: int = 0, *, store: UserStore | None = None,
                secret: str = DEFAULT_SECRET, clock: Callable[[], float] = time.time,
                ttl: float = 3600) -> UsersServer:
    if store is None:
        store = UserStore()
        for name, email, password in DEMO_USERS:
            store.add(name, email, password)
    return UsersServer((host, port), store=store, secret=secret, clock=clock, ttl=ttl)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="users.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, secret=os.environ.get("USERS_TOKEN_SECRET", DEFAULT_SECRET))
    print(f"user service on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
