import json
import os
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


# A stand-in for the user service, speaking the same HTTP: tokens "token-<user id>" are valid.
class _FakeUsers(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if self.path == "/me" and auth.startswith("Bearer token-"):
            status, body = 200, {"id": auth[len("Bearer token-"):], "name": "Test User"}
        else:
            status, body = 401, {"error": "Invalid token"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def fake_user_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeUsers)
    url = _serve(server)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'payments.db'}"


@pytest.fixture
def payment_service(fake_user_service, db_url):
    from payment.server import make_server

    server = make_server(db_url=db_url, user_service_url=fake_user_service)
    url = _serve(server)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def http():
    """Tiny JSON client: http(method, url, body=None, token=None) -> (status, json)."""
    import urllib.error
    import urllib.request

    def call(method, url, body=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    return call
