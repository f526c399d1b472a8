import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from testpilot.environments.base import AcquireRequest, Provider
from testpilot.environments.config import EnvironmentConfig, ServiceConfig
from testpilot.environments.databases import list_databases
from testpilot.environments.local import LocalProvider, cleanup_run, leftover_workdirs
from testpilot.errors import ProvisioningError
from tests.conftest import FIXTURES, need

ALPHA = FIXTURES / "minisuite" / "apps" / "alpha"
PG = os.environ.get("TESTPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def request(pool="p", size=1, services=None, run_id="11111111-2222-3333-4444-555555555555"):
    return AcquireRequest(pool=pool, config=EnvironmentConfig(pool_size=size, services=services or {}),
                          run_id=run_id, apps={"alpha": str(ALPHA)},
                          requirements={"alpha": str(ALPHA / "requirements.txt")})


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    return LocalProvider(tmp_path_factory.mktemp("home"))


def test_conforms_to_protocol(provider):
    assert isinstance(provider, Provider)


def test_acquire_gives_isolated_environment_and_reuses_venv(provider):
    env = provider.acquire(request(services={"db": ServiceConfig(type="sqlite")}))
    work = Path(env.workdir)
    assert (work / "alpha" / "src" / "alpha" / "prices.py").exists()
    assert env.env["TESTPILOT_DB_DB"] == env.databases["db"] == env.env["DATABASE_URL"]
    python = env.python["alpha"]
    out = subprocess.run([python, "-c", "import pytest,sys; print(sys.prefix)"], capture_output=True, text=True)
    assert out.returncode == 0 and str(provider.home) in out.stdout
    sqlite3.connect(env.databases["db"].removeprefix("sqlite:///")).execute("create table t(x)")
    assert provider.health(env).ok
    (work / "alpha" / "dirt.txt").write_text("left by a test")
    provider.release(env)
    assert not work.exists() and leftover_workdirs(provider.home) == []
    again = provider.acquire(request())
    assert again.python["alpha"] == python, "venv should be reused while requirements are unchanged"
    assert not (Path(again.workdir) / "alpha" / "dirt.txt").exists()
    provider.release(again)


def test_slots_are_exclusive_and_come_back(provider):
    first = provider.acquire(request(pool="q", size=2))
    second = provider.acquire(request(pool="q", size=2, run_id="22222222-2222-3333-4444-555555555555"))
    assert {first.slot, second.slot} == {0, 1}
    with pytest.raises(ProvisioningError, match="all 2 local environments of pool 'q' are in use"):
        provider.acquire(request(pool="q", size=2, run_id="33333333-2222-3333-4444-555555555555"))
    provider.release(first)
    third = provider.acquire(request(pool="q", size=2, run_id="33333333-2222-3333-4444-555555555555"))
    assert third.slot == first.slot
    provider.release(second)
    provider.release(third)


def test_failed_acquire_leaves_nothing(provider, tmp_path):
    bad = tmp_path / "bad-reqs.txt"
    bad.write_text("this-package-does-not-exist-testpilot==0.0.0\n")
    req = request(pool="broken")
    req.requirements["alpha"] = str(bad)
    with pytest.raises(ProvisioningError, match="cannot build the virtual environment for alpha"):
        provider.acquire(req)
    assert leftover_workdirs(provider.home) == []
    provider.release(provider.acquire(request(pool="broken")))  # the slot was handed back
    cleanup_run(provider.home, req.run_id, [])
    assert leftover_workdirs(provider.home) == []


def _pg_available() -> bool:
    try:
        with sa.create_engine(PG).connect():
            return True
    except Exception:
        return False


@pytest.mark.postgres
def test_postgres_service_gets_a_dedicated_database(tmp_path):
    need(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    provider = LocalProvider(tmp_path, postgres_url=PG)
    env = provider.acquire(request(pool="pg", services={"payment-db": ServiceConfig(type="postgres")}))
    url = env.databases["payment-db"]
    name = sa.engine.make_url(url).database
    assert url.startswith("postgresql") and name in list_databases(PG)
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("create table t (x int)"))
    provider.release(env)
    assert name not in list_databases(PG)


@pytest.mark.postgres
def test_gc_drops_databases_of_finished_runs_only(tmp_path):
    from testpilot.environments.databases import gc_databases, run_of_database

    need(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    provider = LocalProvider(tmp_path, postgres_url=PG)
    dead, alive = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
    envs = [provider.acquire(request(pool=f"gc{i}", services={"db": ServiceConfig(type="postgres")}, run_id=run))
            for i, run in enumerate((dead, alive))]
    names = [sa.engine.make_url(e.databases["db"]).database for e in envs]
    assert [run_of_database(n) for n in names] == [dead, alive]
    dropped = gc_databases(PG, lambda run_id: run_id == dead)
    assert dropped == [names[0]] and names[1] in list_databases(PG)
    for env in envs:
        provider.release(env)
    assert not set(names) & set(list_databases(PG))
