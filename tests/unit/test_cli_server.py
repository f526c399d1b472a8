"""Small CLI promises: --version, an honest server line, no foreign server on the port, no 'NoneType: None'."""

import io
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.cli import main
from flows.server import MARKER, ensure_api
from tasks.common import quiet_empty_tracebacks
from testpilot.errors import ConfigError


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("testpilot 0.")


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args):
        pass


@pytest.fixture
def some_server(monkeypatch):
    """Something healthy on a port, that Testpilot did not start."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # restored afterwards (ensure_api exports its URL)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # the session's test server, if any
        yield server.server_address[1]
    server.shutdown()


def test_a_server_testpilot_did_not_start_is_refused(tmp_path, some_server):
    with pytest.raises(ConfigError) as err:
        ensure_api(tmp_path, port=some_server, wait=1)
    assert err.value.field == "TESTPILOT_PREFECT_PORT"
    assert f"PREFECT_API_URL=http://127.0.0.1:{some_server}/api" in str(err.value)


def test_our_own_server_is_reused_and_said_so(tmp_path, some_server):
    (tmp_path / MARKER).write_text(json.dumps({"port": some_server, "pid": os.getpid()}))
    assert ensure_api(tmp_path, port=some_server, wait=1) == (f"http://127.0.0.1:{some_server}/api", "reused")
    (tmp_path / MARKER).write_text(json.dumps({"port": some_server + 1, "pid": os.getpid()}))
    with pytest.raises(ConfigError):  # a marker for another port does not count
        ensure_api(tmp_path, port=some_server, wait=1)


def test_threads_outside_the_callers_settings_use_the_api_too(tmp_path, some_server, monkeypatch):
    """Prefect's API log sender runs in its own thread, outside temporary_settings: it must see the URL
    ensure_api chose, or it starts a temporary server of its own (seen in `testpilot demo`)."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    (tmp_path / MARKER).write_text(json.dumps({"port": some_server, "pid": os.getpid()}))
    try:
        url, _ = ensure_api(tmp_path, port=some_server, wait=1)
        seen: list[str] = []
        thread = threading.Thread(target=lambda: seen.append(str(get_current_settings().api.url)))
        thread.start()
        thread.join()
        assert seen == [url]
    finally:
        monkeypatch.undo()  # the environment as it was, then Prefect's global settings from it
        refresh_global_settings_context()


def test_a_returned_failed_state_logs_no_bare_nonetype_line():
    quiet_empty_tracebacks()
    logger = logging.getLogger("prefect.task_runs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.error("Task run failed with state: Failed('1 of 2 test(s) failed')", exc_info=True)
        try:
            raise RuntimeError("a real crash")
        except RuntimeError:
            logger.error("crashed", exc_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "NoneType: None" not in text
    assert "RuntimeError: a real crash" in text  # real tracebacks still show
