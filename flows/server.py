"""Make sure a Prefect API is there: the configured one, or a local SQLite-backed server we start.

The started server is detached from the CLI process so it stays up afterwards, for looking at the
run in the UI; later invocations find it on the same port and reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testpilot.errors import ConfigError, InfrastructureError


def _healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


MARKER = "prefect-server.json"


def _ours(home: Path, port: int) -> int | None:
    """The pid of the server Testpilot started on ``port`` for this home, if it still runs."""
    try:
        marker = json.loads((home / MARKER).read_text())
        pid = int(marker["pid"])
        if int(marker["port"]) != port:
            return None
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


def ensure_api(home: Path, port: int | None = None, wait: float = 90.0) -> tuple[str, str]:
    """Return (api_url, how): how is 'configured', 'reused' or 'started'.

    A server already on the port is reused only when Testpilot started it for this home (a marker
    file in ``home`` records its port and pid); someone else's server there is refused, so runs never
    post into an unrelated Prefect by accident."""
    url = configured_api_url()
    if url:
        return url, "configured"
    port = port or int(os.environ.get("TESTPILOT_PREFECT_PORT", "4200"))
    url = f"http://127.0.0.1:{port}/api"
    how = "reused"
    if _healthy(url):
        if _ours(home, port) is None:
            raise ConfigError(f"a Prefect server that Testpilot did not start for {home} already listens on "
                              f"127.0.0.1:{port}", field="TESTPILOT_PREFECT_PORT",
                              hint=f"set TESTPILOT_PREFECT_PORT to a free port, or PREFECT_API_URL={url} "
                                   "to use that server on purpose")
    else:
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "prefect-server.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_HOME": str(home / "prefect"), "PREFECT_UI_API_URL": url}
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        (home / MARKER).write_text(json.dumps({"port": port, "pid": proc.pid}))
        deadline = time.monotonic() + wait
        while not _healthy(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise InfrastructureError(f"the local Prefect server did not start on port {port} within {wait:.0f}s",
                                          host="127.0.0.1", hint=f"see {home / 'prefect-server.log'}; another "
                                          "program may hold the port (set TESTPILOT_PREFECT_PORT)")
            time.sleep(0.5)
        how = "started"
    os.environ["PREFECT_API_URL"] = url
    from prefect.context import refresh_global_settings_context

    # Prefect's settings were read at import, before this URL: without a refresh its background threads
    # (the API log sender), which run outside the caller's temporary_settings, start a temporary server.
    refresh_global_settings_context()
    return url, how


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_server(folder: Path, port: int = 0, wait: float = 120.0, **extra_env: str) -> Iterator[str]:
    """A `prefect server start` with every service (scheduler, lease repossessor) on a free port, its own
    PREFECT_HOME and SQLite file under ``folder``; yields the API URL and stops the server afterwards.
    For tests, benchmarks and screenshots: the CLI's long-lived server is ``ensure_api``'s."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra_env}
    for var in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        if var not in extra_env:
            env.pop(var, None)
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + wait
            while not _healthy(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise InfrastructureError(f"a Prefect server did not start on port {port} within {wait:.0f}s",
                                              host="127.0.0.1", hint=f"see {log_path}")
                time.sleep(0.5)
            yield url
        finally:
            stop_process(server, 30)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL when ``proc`` has not ended within ``grace`` seconds; waits until it is gone."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def scratch_postgres_database(admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own on the server ``admin_url`` reaches (created here, dropped after),
    as a Prefect server's ``PREFECT_API_DATABASE_CONNECTION_URL`` (asyncpg). For tests and benchmarks in
    which several workers share one server: SQLite serialises every write and answers 'database is locked'
    (503) under a pipeline, its nodes and three workers."""
    import uuid

    import sqlalchemy as sa

    name = f"tp_prefect_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.make_url(admin_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def throwaway_server_on(folder: Path, postgres: str = "") -> Iterator[str]:
    """``throwaway_server`` on a scratch database of the PostgreSQL server ``postgres`` (SQLAlchemy URL),
    or on SQLite when it is empty. For benchmarks that want a production-like server."""
    if not postgres:
        with throwaway_server(folder) as url:
            yield url
        return
    with scratch_postgres_database(postgres) as database, throwaway_server(
            folder, PREFECT_API_DATABASE_CONNECTION_URL=database) as url:
        yield url
