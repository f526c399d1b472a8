"""Health checks against a real loopback HTTP server, a closed port and real commands."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from testpilot.scenarios.health import check_command, check_http, check_tcp, run_health_check
from testpilot.suite import HealthCheck


class _Handler(http.server.BaseHTTPRequestHandler):
    hits = 0
    healthy_after = 0

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits += 1
        ok = self.path == "/health" and type(self).hits > type(self).healthy_after
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"starting")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"hits": 0, "healthy_after": 0})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}", handler
    finally:
        srv.shutdown()
        srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_http_up_and_status_codes(server: tuple[str, type[_Handler]]) -> None:
    address, _ = server
    assert check_http(f"http://{address}/health") == (True, f"HTTP GET http://{address}/health: 200")
    assert check_http(f"http://{address}/other") == (False, f"HTTP GET http://{address}/other: 503 Service Unavailable")


def test_http_retries_with_exponential_backoff_until_healthy(server: tuple[str, type[_Handler]]) -> None:
    address, handler = server
    handler.healthy_after = 2
    slept: list[float] = []
    port = address.rsplit(":", 1)[1]
    result = run_health_check(HealthCheck(http="http://127.0.0.1:{port}/health", retries=5, backoff=0.5),
                              placeholders={"port": port}, sleep=slept.append)
    assert result.ok and result.attempts == 3 and slept == [0.5, 1.0] and result.delays == (0.5, 1.0)
    assert handler.hits == 3


def test_closed_port_gives_a_readable_skip_detail() -> None:
    port = _closed_port()
    slept: list[float] = []
    result = run_health_check(HealthCheck(http=f"http://127.0.0.1:{port}/health", retries=3, backoff=0.2),
                              sleep=slept.append)
    assert not result.ok and result.attempts == 4 and slept == pytest.approx([0.2, 0.4, 0.8])
    assert result.detail == f"HTTP GET http://127.0.0.1:{port}/health: Connection refused (after 4 attempts)"
    tcp = run_health_check(HealthCheck(tcp=f"127.0.0.1:{port}", retries=0), sleep=slept.append)
    assert not tcp.ok and tcp.detail == f"TCP 127.0.0.1:{port}: Connection refused (after 1 attempt)"


def test_tcp_connects_to_a_listening_port(server: tuple[str, type[_Handler]]) -> None:
    address, _ = server
    assert check_tcp(address) == (True, f"TCP {address}: connected")
    assert check_tcp("no-port") == (False, "TCP health check 'no-port' is not host:port")


def test_command_checks_use_argv_without_a_shell(tmp_path: object) -> None:
    ok, detail = check_command([sys.executable, "-c", "print('fine')"])
    assert ok and detail.endswith(": exit 0")
    ok, detail = check_command([sys.executable, "-c", "import sys; sys.exit('db not ready')"])
    assert not ok and detail.endswith("exit 1 (db not ready)")
    assert check_command(["/nonexistent/tool"]) == (False, "command /nonexistent/tool: not found")
    # A shell metacharacter stays a literal argument.
    ok, detail = check_command([sys.executable, "-c", "import sys; sys.exit(sys.argv[1] != '$(echo hi); x')",
                                "$(echo hi); x"])
    assert ok, detail
    spec = HealthCheck(command=f"{sys.executable} -c 'import sys; sys.exit(1)'", retries=1, backoff=0)
    slept: list[float] = []
    result = run_health_check(spec, sleep=slept.append)
    assert not result.ok and result.attempts == 2 and slept == [0]


def test_no_check_declared_is_healthy() -> None:
    result = run_health_check(HealthCheck(), sleep=lambda s: pytest.fail("must not sleep"))
    assert result.ok and result.attempts == 0 and result.detail == "no health check declared"
