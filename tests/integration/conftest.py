"""Real `prefect server start` processes and process workers for the deployment-path tests.

The session's `prefect_api` (Prefect's test harness) runs the server in ephemeral mode, which starts
neither the scheduler nor the lease repossessor. Tests of schedules, leases and `testpilot ci` need
the services a production server runs, so they start one here, with its own PREFECT_HOME and SQLite
file, on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows.server import free_port, scratch_postgres_database, stop_process, throwaway_server
from tests.conftest import REPO

__all__ = ["free_port", "prefect_server"]

PREFECT = [sys.executable, "-m", "prefect"]
# Fast service loops, so a test sees what a production server does within seconds, not minutes.
FAST_SERVICES = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
                 "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
                 "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2"}


@contextmanager
def prefect_server(folder: Path, **extra_env: str) -> Iterator[str]:
    """Start `prefect server start` with every service (fast loops); yield its API URL; stop it."""
    with throwaway_server(folder, **{**FAST_SERVICES, **extra_env}) as url:
        yield url


@contextmanager
def shared_prefect_server(folder: Path) -> Iterator[str]:
    """A server as several workers share one: on a PostgreSQL database of its own (created here, dropped
    after). SQLite serialises every write: with three workers, a pipeline and six node runs it answers
    'database is locked', drops heartbeat events and live nodes look dead. Without PostgreSQL (outside
    CI only) SQLite stands in."""
    from tests.conftest import need
    from tests.unit.test_local_provider import PG, _pg_available

    if not _pg_available():
        need(not os.environ.get("CI"), "PostgreSQL at 127.0.0.1:5432 for a Prefect server several workers share")
        with prefect_server(folder) as url:
            yield url
        return
    with scratch_postgres_database(PG) as db_url, \
            prefect_server(folder, PREFECT_API_DATABASE_CONNECTION_URL=db_url) as url:
        yield url


@contextmanager
def api_url(url: str) -> Iterator[None]:
    """Point this process (client calls and child processes) at ``url``, and back afterwards."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


@pytest.fixture
def full_server(tmp_path: Path) -> Iterator[str]:
    """A real server for one test (e.g. one that kills a lease holder)."""
    with prefect_server(tmp_path / "server") as url:
        yield url


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real server with `deployments.setup` and `prefect deploy --all` done from the repository root.

    Yields the environment for child processes (CLI, workers) that talk to it.
    """
    folder = tmp_path_factory.mktemp("deployed")
    with prefect_server(folder) as url, api_url(url):
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_CLI_PROMPT": "false"}
        for _ in range(2):  # the setup script is idempotent
            setup = run([sys.executable, "-m", "deployments.setup"], env)
            assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "already there" in setup.stdout
        deploy = run([*PREFECT, "--no-prompt", "deploy", "--all"], env)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        yield env


def run(argv: list[str], env: dict[str, str], timeout: float = 300, cwd: Path = REPO
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@contextmanager
def worker(env: dict[str, str], log_path: Path, *args: str, cwd: Path = REPO) -> Iterator[subprocess.Popen[bytes]]:
    """A `prefect worker start --pool testpilot-process` process, polling every second."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*PREFECT, "worker", "start", "--pool", "testpilot-process", *args], cwd=cwd,
                                env={**env, "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "1",
                                     "PREFECT_WORKER_PREFETCH_SECONDS": "5"},
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop_process(proc, 30)
