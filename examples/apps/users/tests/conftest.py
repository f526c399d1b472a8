import json
import os
import threading
import time
import urllib.error
import urllib.request

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


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store():
    from users.store import UserStore

    store = UserStore(iterations=1_000)  # few PBKDF2 rounds: fast tests, same code path
    store.add("Alice Liddell", "alice@example.com", "wonderland-42")
    return store


@pytest.fixture
def users_service(store, clock):
    from users.server import make_server

    server = make_server(store=store, secret="test-secret", clock=clock, ttl=60)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def call(method, url, body=None, token=None):
    """JSON over HTTP: returns (status, decoded body)."""
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


@pytest.fixture
def http():
    return call
