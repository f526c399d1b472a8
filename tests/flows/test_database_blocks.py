"""Saved DatabaseServer blocks back postgres/mysql services; SQLite standing in is said loudly."""

import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from pydantic import SecretStr

from blocks.database import DatabaseServer
from flows.pipeline import pipeline
from tests.conftest import git, make_repo, need
from tests.flows.test_pipeline import artifacts_of
from tests.unit.test_local_provider import PG, _pg_available

pytestmark = pytest.mark.flows
PROBE = '''import os


def test_database_is_the_blocks_server():
    url = os.environ["TESTPILOT_DB_DB"]
    assert url.startswith("postgresql"), url
    assert url.rsplit("/", 1)[1].startswith("tp_")  # a per-run database on that server
'''


def _suite_with(repo: Path, service: str) -> None:
    suite = repo / "testpilot.yaml"
    suite.write_text(suite.read_text().replace("services: {db: {type: sqlite}}", f"services: {{db: {service}}}"))
    git(repo, "commit", "-q", "-am", "database service")


@pytest.mark.postgres
def test_postgres_service_uses_the_named_database_server_block(prefect_api, tmp_path, monkeypatch):
    need(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    monkeypatch.delenv("TESTPILOT_POSTGRES_URL", raising=False)  # only the block knows the server
    DatabaseServer(kind="postgres", url=SecretStr(PG)).save("head11-test-pg", overwrite=True)
    repo = make_repo(tmp_path)
    _suite_with(repo, "{type: postgres, server: head11-test-pg}")
    (repo / "apps/gamma/tests/test_db.py").write_text(PROBE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "probe the database")
    state = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD",
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_completed(), state.message
    report = json.loads((Path(state.result()["results_dir"]) / "report.json").read_text())
    outcomes = {r["node_id"]: r["outcome"] for r in report["results"]}
    assert outcomes == {"tests/test_db.py::test_database_is_the_blocks_server": "passed"}
    assert not [n for n in report["notes"] if "SQLite" in n]


def test_sqlite_standing_in_for_a_server_is_loud(prefect_api, tmp_path, monkeypatch):
    monkeypatch.delenv("TESTPILOT_MYSQL_URL", raising=False)
    repo = make_repo(tmp_path)
    _suite_with(repo, "{type: mysql}")
    git(repo, "commit", "-q", "--allow-empty", "-m", "nothing")
    state = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~2", head="HEAD", full=True,
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_completed(), state.message
    report = json.loads((Path(state.result()["results_dir"]) / "report.json").read_text())
    expected = "WARNING: SQLite stands in for the mysql service 'db' of pool 'local'"
    assert [n for n in report["notes"] if n.startswith(expected)]
    run_id = state.state_details.flow_run_id
    assert expected in str(artifacts_of(run_id)["testpilot-summary"].data)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    assert [log for log in logs if log.level == 30 and log.message.startswith(expected)]


@pytest.mark.postgres
def test_crash_clean_up_and_the_sweep_reach_servers_known_only_from_blocks(prefect_api, tmp_path, monkeypatch):
    """A run whose databases live on a block-configured server leaves none behind after a crash."""
    import argparse
    import uuid
    from types import SimpleNamespace

    from flows.cli import cmd_data_gc
    from tasks.environments import cleanup_hook
    from testpilot.environments.config import ServiceConfig
    from testpilot.environments.databases import create_database, list_databases

    need(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    monkeypatch.delenv("TESTPILOT_POSTGRES_URL", raising=False)
    DatabaseServer(kind="postgres", url=SecretStr(PG)).save("blocks-only-pg", overwrite=True)
    crashed, gone = str(uuid.uuid4()), str(uuid.uuid4())  # neither is a flow run Prefect knows: both over
    names = [create_database("db", ServiceConfig(type="postgres", url=PG), env_id="e1", run_id=run,
                             workdir=tmp_path).rsplit("/", 1)[1] for run in (crashed, gone)]
    assert set(names) <= set(list_databases(PG))
    cleanup_hook(None, SimpleNamespace(id=crashed), None)
    assert names[0] not in list_databases(PG) and names[1] in list_databases(PG)
    assert cmd_data_gc(argparse.Namespace(url=None, suite=None)) == 0  # `testpilot data gc`
    assert names[1] not in list_databases(PG)


def test_data_gc_with_no_database_server_still_sweeps_dead_runs(prefect_api, monkeypatch, capsys):
    """`testpilot data gc` on a machine with no database server configured: the dead-run sweep the docs
    promise still runs, and the missing server is a note, not an error."""
    import argparse

    import blocks.database
    from flows.cli import cmd_data_gc

    for var in ("TESTPILOT_POSTGRES_URL", "TESTPILOT_MYSQL_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(blocks.database, "server_urls", lambda: [])  # other tests of the session save blocks
    assert cmd_data_gc(argparse.Namespace(url=None, suite=None)) == 0
    out = capsys.readouterr().out
    assert "dead runs marked Crashed: " in out and "no database server to clean" in out


@pytest.mark.postgres
def test_a_plain_postgresql_url_gets_the_installed_driver(tmp_path):
    """TESTPILOT_POSTGRES_URL=postgresql://... (the form docs/testdata.md uses) must not ask for psycopg2."""
    from testpilot.environments.config import ServiceConfig
    from testpilot.environments.databases import create_database, drop_database, list_databases

    need(_pg_available(), "PostgreSQL at 127.0.0.1:5432")
    plain = PG.replace("postgresql+psycopg://", "postgresql://")
    assert plain.startswith("postgresql://")
    url = create_database("db", ServiceConfig(type="postgres"), env_id="e1", run_id="0" * 32, workdir=tmp_path,
                          postgres_url=plain)
    name = url.rsplit("/", 1)[1]
    assert name in list_databases(plain)
    drop_database(url)
    assert name not in list_databases(plain)
