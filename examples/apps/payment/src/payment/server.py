"""HTTP API: ``python -m payment.server --port PORT``.

Environment: ``TESTPILOT_DB_PAYMENT_DB`` (database URL, default sqlite:///payments.db) and
``USER_SERVICE_URL`` (where tokens are checked, default http://127.0.0.1:8001).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from payment.auth import Unauthorized, UserServiceUnavailable, bearer_token, verify_token
from payment.db import DEFAULT_URL, Database, DatabaseUnavailable, PaymentRepository
from payment.service import Forbidden, InvalidTransition, PaymentNotFound, PaymentService
from payment.validation import ValidationError

PAYMENT_PATH = re.compile(r"^/payments/([0-9a-zA-Z_-]+)(/confirm)?$")


class PaymentHandler(BaseHTTPRequestHandler):
    server: PaymentServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except json.JSONDecodeError:
            raise ValidationError("body is not valid JSON") from None

    def do_GET(self) -> None:
        if self.path == "/health":
            try:
                with Database(self.server.db_url) as db:
                    db.execute("SELECT 1")
            except DatabaseUnavailable as exc:
                return self._send(503, {"status": "error", "detail": str(exc)})
            return self._send(200, {"status": "ok"})
        match = PAYMENT_PATH.match(self.path)
        if not match or match.group(2):
            return self._send(404, {"error": "not found"})
        self._handle(lambda svc, user: svc.get(match.group(1), user))

    def do_POST(self) -> None:
        if self.path == "/payments":
            return self._handle(lambda svc, user: svc.create(user, self._body()), created=True)
        match = PAYMENT_PATH.match(self.path)
        if not match or not match.group(2):
            return self._send(404, {"error": "not found"})
        self._handle(lambda svc, user: svc.confirm(match.group(1), user))

    def _handle(self, action: Any, created: bool = False) -> None:
        try:
            token = bearer_token(self.headers.get("Authorization"))
            user = verify_token(self.server.user_service_url, token)
            with Database(self.server.db_url) as db:
                result = action(PaymentService(PaymentRepository(db)), str(user["id"]))
        except Unauthorized as exc:
            return self._send(401, {"error": str(exc)})
        except (UserServiceUnavailable, DatabaseUnavailable) as exc:
            return self._send(503, {"error": str(exc)})
        except ValidationError as exc:
            return self._send(400, {"error": str(exc)})
        except PaymentNotFound as exc:
            return self._send(404, {"error": str(exc)})
        except Forbidden as exc:
            return self._send(403, {"error": str(exc)})
        except InvalidTransition as exc:
            return self._send(409, {"error": str(exc)})
        self._send(201 if created else 200, result)


class PaymentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, db_url: str, user_service_url: str) -> None:
        super().__init__(address, PaymentHandler)
        self.db_url, self.user_service_url = db_url, user_service_url


def make_server(host: str = "127.0.0.1", port: int = 0, *, db_url: str = DEFAULT_URL,
                user_service_url: str = "http://127.0.0.1:8001") -> PaymentServer:
    with Database(db_url) as db:  # create the table up front so a bad URL fails at start-up
        PaymentRepository(db)
    return PaymentServer((host, port), db_url=db_url, user_service_url=user_service_url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="payment.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port,
                         db_url=os.environ.get("TESTPILOT_DB_PAYMENT_DB", DEFAULT_URL),
                         user_service_url=os.environ.get("USER_SERVICE_URL", "http://127.0.0.1:8001"))
    print(f"payment service on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
