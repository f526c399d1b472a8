"""Apps that are services, started as real processes for a scenario and always stopped after it.

A service runs in its app folder inside the environment (``cwd <workdir>/<app>``) with the environment
the caller builds (the app venv's ``bin`` first on PATH, the app's ``env`` and the environment's own
variables). ``{port}`` in the command is a free loopback port; the command is split with shlex and run
without a shell, in its own process group so stopping it also stops its children. Output goes to a log
file whose last lines explain a service that exits at start-up.

Live processes are kept in a registry of this module keyed by pid, so tasks can pass plain data
(``ServiceStatus``) around and a crash hook can still stop everything (``stop_all``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from testpilot.errors import ConfigError
from testpilot.scenarios.health import CheckSpec, HealthResult, run_health_check
from testpilot.suite import HealthCheck

LOOPBACK = "127.0.0.1"

_running: dict[int, subprocess.Popen[bytes]] = {}
_records: dict[int, Path] = {}  # pid -> its pid file, removed when the service is stopped
_running_lock = threading.Lock()


@dataclass(frozen=True)
class ServiceStatus:
    """A started service: where it listens and whether its health check passed."""

    app: str
    url: str
    port: int
    pid: int
    ok: bool
    detail: str
    log: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the OS picks it; a tiny race with other binders remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_variable(app: str) -> str:
    """``payment-service`` -> ``PAYMENT_SERVICE_URL``: the variable steps read the service URL from."""
    return re.sub(r"[^A-Za-z0-9]", "_", app).upper() + "_URL"


def service_url(port: int, host: str = LOOPBACK) -> str:
    return f"http://{host}:{port}"


def service_argv(command: str, *, port: int, app: str = "") -> list[str]:
    """Split the service command (no shell) and fill ``{port}`` per word."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"cannot parse service command: {exc}", field=f"apps.{app}.service.command",
                          hint="balance the quotes") from None
    if not words:
        raise ConfigError("service command is empty", field=f"apps.{app}.service.command")
    return [w.replace("{port}", str(port)) for w in words]


def start_service(app: str, command: str, *, cwd: str, env: Mapping[str, str], port: int,
                  log_path: str, record_dir: Path | None = None, run_id: str = "") -> int:
    """Start the service process and return its pid; it keeps running until ``stop_service``.

    With ``record_dir``, a pid file ``<run_id>-<pid>.json`` records it there until it is stopped, so a
    run killed with ``kill -9`` (no hook runs) leaves a trace the sweep (:func:`sweep_services`) acts on."""
    argv = service_argv(command, port=port, app=app)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,  # noqa: S603
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError:
            # A missing program is a down service, reported through its health check, not a crash.
            log.write(f"testpilot: cannot start {shlex.join(argv)}: {argv[0]} not found\n".encode())
            return 0
    with _running_lock:
        _running[proc.pid] = proc
    if record_dir is not None:
        record_dir.mkdir(parents=True, exist_ok=True)
        record = {"pid": proc.pid, "run_id": run_id, "app": app, "started": _start_ticks(proc.pid)}
        (record_dir / f"{run_id or 'norun'}-{proc.pid}.json").write_text(json.dumps(record))
        _records[proc.pid] = record_dir / f"{run_id or 'norun'}-{proc.pid}.json"
    return proc.pid


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def sweep_services(record_dir: Path, live_runs: set[str]) -> list[int]:
    """Kill the process group of every recorded service whose run is not in ``live_runs``; returns the pids.

    A record whose pid now belongs to another process (a different start time) is only removed."""
    killed: list[int] = []
    for path in sorted(record_dir.glob("*.json")) if record_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            pid, run_id = int(record["pid"]), str(record.get("run_id", ""))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if run_id and run_id in live_runs:
            continue
        if record.get("started") is not None and _start_ticks(pid) == record["started"]:
            try:
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        path.unlink(missing_ok=True)
    return killed


def exit_status(pid: int) -> int | None:
    """The exit code of a service that has stopped by itself, None while it runs (or is unknown)."""
    with _running_lock:
        proc = _running.get(pid)
    return proc.poll() if proc else None


def log_tail(log_path: str, lines: int = 1) -> str:
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])[:300]


class _Exited(Exception):
    """Raised from the health check's sleep: the service is gone, so further tries are pointless."""


def wait_healthy(pid: int, spec: CheckSpec | None, *, port: int, log_path: str,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 2.0) -> HealthResult:
    """Run the app's health check against the started service (``{port}`` filled in). A service that
    exits stops the retries at once; the result then gives its exit code and last log line."""
    if not pid:
        return HealthResult(False, f"service did not start: {log_tail(log_path)}", 0)
    if spec is None:
        # No check declared: a listening port is the least we can ask of a service.
        spec = HealthCheck(tcp=f"{LOOPBACK}:{{port}}", retries=5, backoff=0.2)

    def sleep_unless_exited(delay: float) -> None:
        if exit_status(pid) is not None:
            raise _Exited
        sleep(delay)

    try:
        result = run_health_check(spec, placeholders={"port": str(port)}, timeout=timeout,
                                  sleep=sleep_unless_exited)
    except _Exited:
        result = HealthResult(False, "", 0)
    code = exit_status(pid)
    if code is None:
        return result
    tail = log_tail(log_path)
    return HealthResult(False, f"service exited with code {code}" + (f" ({tail})" if tail else ""),
                        result.attempts, result.delays)


def stop_service(pid: int, *, grace: float = 3.0) -> int | None:
    """Stop the service's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    with _running_lock:
        proc = _running.pop(pid, None)
        record = _records.pop(pid, None)
    if proc is None:
        return None
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        # The leader is gone, but children it left in the group may still run.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if record is not None:
        record.unlink(missing_ok=True)
    return proc.returncode


def stop_services(pids: Iterable[int], *, grace: float = 3.0) -> list[int]:
    """Stop each service; returns the pids that were still registered."""
    stopped = []
    for pid in pids:
        if pid and stop_service(pid, grace=grace) is not None:
            stopped.append(pid)
    return stopped


def stop_all(grace: float = 0.0) -> list[int]:
    """Stop every service this process started (crash and cancel hooks)."""
    with _running_lock:
        pids = list(_running)
    return stop_services(pids, grace=grace)


def running_pids() -> list[int]:
    with _running_lock:
        return [pid for pid, proc in _running.items() if proc.poll() is None]
