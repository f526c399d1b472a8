"""Loading into SQLite, PostgreSQL and MariaDB: foreign keys, existing tables, rollback, isolation, gc."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from testpilot.errors import InfrastructureError
from testpilot.testdata import (
    drop_run_data,
    export_csv,
    export_json,
    for_target,
    gc,
    generate,
    list_namespaces,
    load,
    namespace_url,
)
from testpilot.testdata.namespaces import engine_url

DATABASES = [
    pytest.param("sqlite_url", id="sqlite"),
    pytest.param("pg_url", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb_url", id="mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=DATABASES)
def db_url(request) -> Iterator[str]:
    url = request.getfixturevalue(request.param)
    yield url


@contextmanager
def connected(url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def ids(conn: sa.Connection, table: str, column: str = "id") -> set[str]:
    return {str(v) for v in conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars()}


def test_example_loads_with_foreign_keys_intact(db_url, example):
    data = generate(example)
    run = str(uuid.uuid4())
    try:
        report = load(db_url, data, run_id=run, label="staging")
        assert report.row_counts == {"users": 10, "payment_methods": 5}
        assert report.identity == data.identity and "tp_" in report.url
        assert report.sample["users"][0]["id"] in data.tables["users"].column("id")
        with connected(namespace_url(db_url, run, "staging")) as conn:
            fks = sa.inspect(conn).get_foreign_keys("payment_methods")
            assert [(fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) for fk in fks] \
                == [(["user_id"], "users", ["id"])]
            joined = conn.execute(sa.text(
                "SELECT count(*) FROM payment_methods p JOIN users u ON u.id = p.user_id")).scalar_one()
            assert joined == 5
            assert ids(conn, "users") == set(data.tables["users"].column("id"))
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            else:
                with pytest.raises(sa.exc.IntegrityError):
                    conn.execute(sa.text("INSERT INTO payment_methods (id, user_id, type, details) VALUES "
                                         "(:i, :u, 'paypal', '{}')"), {"i": str(uuid.uuid4()), "u": str(uuid.uuid4())})
    finally:
        assert drop_run_data(db_url, run) == [f"tp_{uuid.UUID(run).hex}_staging"]
    assert all(ns.run_id != run for ns in list_namespaces(db_url))


TEMPLATE_DDL = [
    "CREATE TABLE {s}users (id VARCHAR(36) PRIMARY KEY, name VARCHAR(200), email VARCHAR(200) UNIQUE,"
    " created_at TIMESTAMP NULL, plan VARCHAR(20) DEFAULT 'free' NOT NULL)",
    "CREATE TABLE {s}payment_methods (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36) NOT NULL"
    " REFERENCES {s}users (id), type VARCHAR(20) {unique}, details TEXT)",
    "CREATE INDEX ix_pm_type ON {s}payment_methods (type)",
]


@contextmanager
def template_tables(url: str, *, unique_type: bool = False) -> Iterator[str | None]:
    """Existing app tables (as migrations would leave them) in a schema/database of their own."""
    dialect = engine_url(url).get_backend_name()
    name = None if dialect == "sqlite" else f"tdtpl_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(engine_url(url))
    try:
        with engine.begin() as conn:
            if name:
                conn.exec_driver_sql(f"CREATE {'SCHEMA' if dialect == 'postgresql' else 'DATABASE'} {name}")
            for ddl in TEMPLATE_DDL:
                conn.exec_driver_sql(ddl.format(s=f"{name}." if name else "",
                                                unique="UNIQUE" if unique_type else ""))
        yield name
    finally:
        if name:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP {'SCHEMA' if dialect == 'postgresql' else 'DATABASE'} {name}"
                                     + (" CASCADE" if dialect == "postgresql" else ""))
        engine.dispose()


def test_existing_tables_are_reflected_and_copied_into_the_run(db_url, example):
    data = generate(example)  # details is json; the app's column is TEXT, so it gets JSON text
    run = str(uuid.uuid4())
    with template_tables(db_url) as template:
        try:
            report = load(db_url, data, run_id=run, create_tables=False, template_schema=template)
            assert report.row_counts == {"users": 10, "payment_methods": 5}
            with connected(namespace_url(db_url, run)) as conn:
                inspector = sa.inspect(conn)
                assert inspector.get_foreign_keys("payment_methods")[0]["referred_table"] == "users"
                assert [ix["name"] for ix in inspector.get_indexes("payment_methods")
                        if ix["column_names"] == ["type"]] == ["ix_pm_type"]
                # Columns the dataset does not fill get the table's defaults.
                assert set(conn.execute(sa.text("SELECT plan FROM users")).scalars()) == {"free"}
                stored = dict(conn.execute(sa.text("SELECT id, details FROM payment_methods")).all())
                assert {k: json.loads(v) for k, v in stored.items()} == {
                    row[0]: row[3] for row in data.tables["payment_methods"].rows}
            if template is not None:  # the template itself stays empty
                with connected(db_url) as conn:
                    assert conn.execute(sa.text(f"SELECT count(*) FROM {template}.users")).scalar_one() == 0
        finally:
            drop_run_data(db_url, run)


def test_a_failed_load_rolls_back_and_leaves_nothing(db_url, example, tmp_path):
    # payment_methods.type is UNIQUE in the app's tables, but 5 rows share 3 types: the second table fails
    # after the first one was written.
    data = generate(example)
    run = str(uuid.uuid4())
    with template_tables(db_url, unique_type=True) as template:
        with pytest.raises(InfrastructureError, match="loading test data failed") as caught:
            load(db_url, data, run_id=run, create_tables=False, template_schema=template)
        assert caught.value.phase == "load"
    assert [ns for ns in list_namespaces(db_url) if ns.run_id == run] == []
    if "sqlite" in db_url:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_two_concurrent_runs_see_only_their_own_rows(db_url, example):
    runs = {}
    for seed in (1, 2):
        seeded = {n: c.model_copy(update={"seed": seed}) for n, c in example.items()}
        runs[str(uuid.uuid4())] = generate(seeded)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(run_id: str) -> None:
        try:
            barrier.wait(timeout=30)
            load(db_url, runs[run_id], run_id=run_id, label="ci")
            barrier.wait(timeout=30)  # both loaded before either looks
            with connected(namespace_url(db_url, run_id, "ci")) as conn:
                assert ids(conn, "users") == set(runs[run_id].tables["users"].column("id"))
                assert ids(conn, "payment_methods") == set(runs[run_id].tables["payment_methods"].column("id"))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in runs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        a, b = (set(d.tables["users"].column("id")) for d in runs.values())
        assert not a & b  # different seeds, different rows: seeing the other's would show
    finally:
        for r in runs:
            drop_run_data(db_url, r)


_KILLED_RUN = """
import sys, time
sys.path.insert(0, sys.argv[3])
from conftest import example_datasets
from testpilot.testdata import generate, load
load(sys.argv[1], generate(example_datasets()), run_id=sys.argv[2], label="killed")
print("loaded", flush=True)
time.sleep(120)
"""


def test_gc_removes_what_a_killed_run_left(db_url, example, request):
    dead, alive = str(uuid.uuid4()), str(uuid.uuid4())
    load(db_url, generate(example), run_id=alive, label="live")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, db_url, dead, str(request.path.parent)],  # noqa: S603
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "loaded"
        proc.send_signal(signal.SIGKILL)  # no teardown runs
        proc.wait(timeout=30)
        mine = {ns.run_id for ns in list_namespaces(db_url)} & {dead, alive}
        assert mine == {dead, alive}
        asked: list[str] = []

        def not_finished(run_id: str) -> bool:
            asked.append(run_id)
            return False

        assert [n for n in gc(db_url, not_finished) if dead in n or alive in n] == []
        assert {dead, alive} <= set(asked)
        assert gc(db_url, lambda run_id: run_id == dead) == [f"tp_{uuid.UUID(dead).hex}_killed"]
        left = {ns.run_id for ns in list_namespaces(db_url)}
        assert dead not in left and alive in left
    finally:
        if proc.poll() is None:
            proc.kill()
        drop_run_data(db_url, alive)
        drop_run_data(db_url, dead)


def test_gc_keeps_namespaces_when_the_lookup_fails(sqlite_url, example):
    run = str(uuid.uuid4())
    load(sqlite_url, generate(example), run_id=run)

    def broken(run_id: str) -> bool:
        raise RuntimeError("Prefect API down")

    assert gc(sqlite_url, broken) == []
    assert [ns.run_id for ns in list_namespaces(sqlite_url)] == [run]


def test_cross_app_dataset_keeps_keys_consistent(tmp_path, example):
    datasets = {"users": example["users"].model_copy(update={"targets": ["users_app"]}),
                "payment_methods": example["payment_methods"].model_copy(update={"targets": ["payments"]})}
    data = generate(datasets)
    run = str(uuid.uuid4())
    users_url, payments_url = (f"sqlite:///{tmp_path / name}.db" for name in ("users_app", "payments"))
    load(users_url, for_target(data, datasets, "users_app"), run_id=run)
    load(payments_url, for_target(data, datasets, "payments.api"), run_id=run)
    with connected(namespace_url(users_url, run)) as users, connected(namespace_url(payments_url, run)) as pay:
        user_ids = ids(users, "users")
        referenced = ids(pay, "payment_methods", "user_id")
        assert referenced and referenced <= user_ids
        assert not sa.inspect(pay).has_table("users")


def test_export_json_and_csv(tmp_path, example):
    data = generate(example)
    json_files = export_json(data, tmp_path / "json")
    csv_files = export_csv(data, tmp_path / "csv")
    assert [p.name for p in json_files] == ["users.json", "payment_methods.json"]
    users = json.loads((tmp_path / "json" / "users.json").read_text())
    assert [u["id"] for u in users] == data.tables["users"].column("id")
    with (tmp_path / "csv" / "payment_methods.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["user_id"] for r in rows] == data.tables["payment_methods"].column("user_id")
    assert json.loads(rows[0]["details"]) == data.tables["payment_methods"].rows[0][3]
    assert len(csv_files) == 2


def test_gc_removes_a_sqlite_file_left_half_written(sqlite_url, tmp_path):
    # A run killed during a SQLite load leaves only the *.partial file; it is still found and reaped.
    run = str(uuid.uuid4())
    partial = tmp_path / f"app.tp_{uuid.UUID(run).hex}_ci.db.partial"
    partial.write_bytes(b"half")
    assert [ns.run_id for ns in list_namespaces(sqlite_url)] == [run]
    assert gc(sqlite_url, lambda run_id: False) == []
    assert gc(sqlite_url, lambda run_id: run_id == run) == [f"tp_{uuid.UUID(run).hex}_ci"]
    assert not partial.exists()
