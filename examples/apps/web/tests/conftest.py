import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _PlainRunFixtures:
    """Stand-ins for the fixtures of Testpilot's plugin (``-p testpilot_pytest``) in plain pytest runs:
    no inputs from earlier scenario steps, and published outputs go nowhere."""

    @pytest.fixture
    def testpilot_inputs(self):
        return {}

    @pytest.fixture
    def testpilot_outputs(self):
        return {}


def pytest_configure(config):
    # Checked on the loaded plugins, not on importability: the plugin may be installed but not enabled.
    if not any(hasattr(p, "testpilot_outputs") for p in config.pluginmanager.get_plugins()):
        config.pluginmanager.register(_PlainRunFixtures(), "testpilot-plain-run-fixtures")


@pytest.fixture(autouse=True)
def _example_delay():
    # Lets a benchmark stretch the suite (TESTPILOT_EXAMPLE_DELAY seconds per test).
    time.sleep(float(os.environ.get("TESTPILOT_EXAMPLE_DELAY", "0")))


PAYMENT = {"id": "pay-1", "user_id": "u1", "amount": 2500, "currency": "EUR", "method": "credit_card",
           "fee": 103, "status": "pending", "card_last4": "4242", "created_at": "2026-03-01T12:00:00+00:00"}


class _FakePayments(BaseHTTPRequestHandler):
    """Speaks the payment service's API for one user ("token-ok") and an in-memory store."""

    payments: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self):
        if self.headers.get("Authorization") != "Bearer token-ok":
            self._send(401, {"error": "Unauthorized: Invalid token"})
            return False
        return True

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        match = re.fullmatch(r"/payments/([^/]+)", self.path)
        if self._authorised():
            payment = self.payments.get(match.group(1)) if match else None
            self._send(200, payment) if payment else self._send(404, {"error": "no payment"})

    def do_POST(self):
        if not self._authorised():
            return
        if self.path == "/payments":
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            card = body.pop("card_number", None)
            payment = {**PAYMENT, **body, "id": f"pay-{len(self.payments) + 1}",
                       "card_last4": card[-4:] if card else None}
            self.payments[payment["id"]] = payment
            return self._send(201, payment)
        match = re.fullmatch(r"/payments/([^/]+)/confirm", self.path)
        payment = self.payments.get(match.group(1)) if match else None
        if payment is None:
            return self._send(404, {"error": "no payment"})
        if payment["status"] != "pending":
            return self._send(409, {"error": f"cannot go from {payment['status']} to confirmed"})
        payment["status"] = "confirmed"
        self._send(200, payment)


@pytest.fixture
def fake_payment_service():
    handler = type("Handler", (_FakePayments,), {"payments": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
