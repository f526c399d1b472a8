"""App health checks before a scenario: HTTP GET, TCP connect, or a command, with retries and backoff.

The result's ``detail`` becomes the skip reason of the app's steps ("app X unavailable: <detail>"),
so it says what was tried and what was seen. ``sleep`` is injected; tests pass a recorder.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class CheckSpec(Protocol):
    """What ``run_health_check`` reads; suite.HealthCheck matches it."""

    http: str | None
    tcp: str | None
    command: str | None
    retries: int
    backoff: float


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    detail: str
    attempts: int
    delays: tuple[float, ...] = field(default=())


def check_http(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """One GET; a 2xx or 3xx answer is healthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return True, f"HTTP GET {url}: {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP GET {url}: {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        return False, f"HTTP GET {url}: {reason}"
    except (OSError, ValueError) as exc:
        return False, f"HTTP GET {url}: {exc}"


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"TCP health check {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_tcp(address: str, timeout: float = 2.0) -> tuple[bool, str]:
    """One TCP connect to ``host:port``."""
    try:
        host, port = _split_address(address)
    except ValueError as exc:
        return False, str(exc)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"TCP {address}: connected"
    except OSError as exc:
        return False, f"TCP {address}: {exc.strerror or exc}"


def check_command(argv: Sequence[str], timeout: float = 10.0, cwd: str | None = None) -> tuple[bool, str]:
    """Run ``argv`` (no shell); exit status 0 is healthy."""
    shown = shlex.join(argv)
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd,  # noqa: S603
                              check=False)
    except FileNotFoundError:
        return False, f"command {shown}: not found"
    except subprocess.TimeoutExpired:
        return False, f"command {shown}: no answer within {timeout:g}s"
    if proc.returncode == 0:
        return True, f"command {shown}: exit 0"
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    return False, f"command {shown}: exit {proc.returncode}" + (f" ({tail[0][:200]})" if tail[0] else "")


def _fill(text: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: URLs and commands may hold other braces.
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def run_health_check(spec: CheckSpec, *, placeholders: dict[str, str] | None = None, timeout: float = 2.0,
                     cwd: str | None = None, sleep: Callable[[float], None] = time.sleep) -> HealthResult:
    """Try the check up to ``1 + spec.retries`` times, sleeping ``backoff``, ``2*backoff``, ... between
    tries. ``placeholders`` fills ``{port}`` and the like in the URL, address or command."""
    values = placeholders or {}
    probe: Callable[[], tuple[bool, str]]
    if spec.http:
        url = _fill(spec.http, values)
        probe = lambda: check_http(url, timeout)  # noqa: E731
    elif spec.tcp:
        address = _fill(spec.tcp, values)
        probe = lambda: check_tcp(address, timeout)  # noqa: E731
    elif spec.command:
        argv = [_fill(part, values) for part in shlex.split(spec.command)]
        probe = lambda: check_command(argv, max(timeout, 10.0), cwd)  # noqa: E731
    else:
        return HealthResult(True, "no health check declared", 0)
    delays: list[float] = []
    attempts = 0
    detail = ""
    for attempt in range(spec.retries + 1):
        if attempt:
            delay = spec.backoff * 2 ** (attempt - 1)
            delays.append(delay)
            sleep(delay)
        attempts += 1
        ok, detail = probe()
        if ok:
            return HealthResult(True, detail, attempts, tuple(delays))
    return HealthResult(False, f"{detail} (after {attempts} attempt{'s' if attempts > 1 else ''})",
                        attempts, tuple(delays))
