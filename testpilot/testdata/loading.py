"""Loading generated rows into a run's own namespace, all or nothing.

PostgreSQL: one transaction creates the schema, creates the tables without foreign keys, COPYs the rows
(psycopg 3), then adds the foreign keys (one validating scan each instead of a check per row).
DDL is transactional there, so a failure leaves nothing. MySQL/MariaDB: DDL commits on its own, so a
failed load drops the database it created. SQLite: the file is written as ``*.partial`` and renamed
into place only when complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pymysql
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable
from sqlalchemy.sql.schema import RETAIN_SCHEMA

from testpilot.errors import ConfigError, InfrastructureError
from testpilot.testdata.generate import GeneratedData, TableData, jsonable
from testpilot.testdata.namespaces import (
    connect_engine,
    dialect_of,
    engine_url,
    namespace_name,
    namespace_url,
    sqlite_path,
)
from testpilot.testdata.schema import FieldSpec

_BATCH = 5000


@dataclass
class LoadReport:
    """What a load did: where (password hidden), how many rows per table, a few rows, and how long."""

    namespace: str
    url: str
    identity: str
    dialect: str
    method: str
    row_counts: dict[str, int]
    sample: dict[str, list[dict[str, Any]]]
    seconds: float


def load(url: str, data: GeneratedData, *, run_id: str, label: str = "default", create_tables: bool = True,
         template_schema: str | None = None, sample_rows: int = 3,
         clock: Callable[[], float] = time.perf_counter) -> LoadReport:
    """Load ``data`` into a new namespace for (run_id, label) at ``url``; all or nothing.

    ``create_tables=True`` creates tables from the dataset schemas. ``create_tables=False`` copies the
    structure of the tables that already exist in ``template_schema`` (default: the URL's schema,
    database or file), foreign keys and indexes included, and loads into the copies in foreign key
    order. Raises ConfigError when the namespace exists or the data does not fit the tables.
    """
    started = clock()
    parsed = engine_url(url)
    dialect = dialect_of(parsed)
    name = namespace_name(run_id, label)
    if dialect == "postgresql":
        counts, sample = _load_postgres(parsed, data, name, create_tables, template_schema, sample_rows)
    elif dialect == "mysql":
        counts, sample = _load_mysql(parsed, data, name, create_tables, template_schema, sample_rows)
    else:
        counts, sample = _load_sqlite(parsed, data, name, create_tables, sample_rows)
    shown = sa.engine.make_url(namespace_url(url, run_id, label)).render_as_string(hide_password=True)
    return LoadReport(name, shown, data.identity, dialect, "copy" if dialect == "postgresql" else "insert",
                      counts, sample, clock() - started)


def _load_postgres(url: URL, data: GeneratedData, name: str, create: bool, template: str | None,
                   sample_rows: int) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
    with connect_engine(url, "load") as engine, _load_errors(url), engine.begin() as conn:
        if name in sa.inspect(conn).get_schema_names():
            raise _exists(name)
        quoted = conn.dialect.identifier_preparer.quote_identifier(name)
        conn.execute(sa.text(f"CREATE SCHEMA {quoted}"))
        metadata = _metadata(conn, data, name, create, template)
        tables = _load_order(metadata, data)
        for table in metadata.sorted_tables:
            conn.execute(CreateTable(table, include_foreign_key_constraints=[]))
        for table in tables:
            _copy(conn, table, data.tables[table.name])
        for table in metadata.sorted_tables:
            for fk in table.foreign_key_constraints:
                conn.execute(AddConstraint(fk))
            for index in table.indexes:
                conn.execute(CreateIndex(index))
        return _report(conn, tables, sample_rows)


def _load_mysql(url: URL, data: GeneratedData, name: str, create: bool, template: str | None,
                sample_rows: int) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
    with connect_engine(url, "load") as engine, _load_errors(url):
        with engine.begin() as conn:
            if name in sa.inspect(conn).get_schema_names():
                raise _exists(name)
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            conn.execute(sa.text(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4"))
        try:
            with engine.begin() as conn:
                metadata = _metadata(conn, data, name, create, template or url.database)
                metadata.create_all(conn)
            with engine.begin() as conn:
                tables = _load_order(metadata, data)
                for table in tables:
                    _insert(conn, table, data.tables[table.name])
                return _report(conn, tables, sample_rows)
        except BaseException:
            with engine.begin() as conn:  # DDL is not transactional in MySQL: undo by dropping it all
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
            raise


def _load_sqlite(url: URL, data: GeneratedData, name: str, create: bool,
                 sample_rows: int) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
    final = sqlite_path(url, name)
    if final.exists():
        raise _exists(name)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        ddl: list[str] = []
        if create:
            metadata = _metadata(None, data, None, True, None)
        else:
            with connect_engine(url, "load") as source, source.connect() as conn:
                metadata = _metadata(conn, data, None, False, None)
                # SQLite's own DDL text, replayed as is: reflection would lose unnamed UNIQUE constraints.
                ddl = list(conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                    "ORDER BY rowid").scalars())
        with connect_engine(url.set(database=str(partial)), "load") as engine, _load_errors(url):
            with engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                if create:
                    metadata.create_all(conn)
                for statement in ddl:
                    conn.exec_driver_sql(statement)
                tables = _load_order(metadata, data)
                for table in tables:
                    _insert(conn, table, data.tables[table.name])
                result = _report(conn, tables, sample_rows)
        os.replace(partial, final)
        return result
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _load_errors(url: URL) -> Iterator[None]:
    try:
        yield
    except (sa.exc.DBAPIError, psycopg.Error, pymysql.Error) as exc:  # COPY raises psycopg's own errors
        reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        raise InfrastructureError(f"loading test data failed: {reason}", host=url.host or "", phase="load",
                                  hint="nothing was written; check the data against the tables") from None


def _exists(name: str) -> ConfigError:
    return ConfigError(f"namespace {name!r} already exists", field="run_id",
                       hint="drop it with drop_run_data() first, or load under another label")


def _metadata(conn: Connection | None, data: GeneratedData, schema: str | None, create: bool,
              template: str | None) -> sa.MetaData:
    metadata = sa.MetaData()
    if create:
        for table in data.tables.values():
            _table_from_schema(metadata, table, data, schema)
        return metadata
    assert conn is not None
    source = sa.MetaData()
    source.reflect(conn, schema=template)
    for reflected in source.sorted_tables:
        reflected.to_metadata(metadata, schema=schema if schema is not None else RETAIN_SCHEMA)
    known = {t.name: t for t in metadata.tables.values()}
    for name, generated in data.tables.items():
        if name not in known:
            raise ConfigError(f"dataset {name!r}: no table {name!r} to load into", field=f"data.{name}",
                              hint="create the table first (migrations), or load with create_tables=True")
        missing = [c for c in generated.columns if c not in known[name].c]
        if missing:
            raise ConfigError(f"dataset {name!r}, field {missing[0]!r}: table {name!r} has no such column",
                              field=f"data.{name}.schema.{missing[0]}",
                              hint=f"columns: {', '.join(known[name].c.keys())}")
    return metadata


def _load_order(metadata: sa.MetaData, data: GeneratedData) -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.name in data.tables]


def _table_from_schema(metadata: sa.MetaData, table: TableData, data: GeneratedData,
                       schema: str | None) -> sa.Table:
    columns: list[Any] = []
    for i, name in enumerate(table.columns):
        spec = table.specs[name]
        target = spec
        if spec.type == "ref":
            target = data.tables[spec.ref_table].specs[spec.ref_field] if spec.ref_table in data.tables \
                else FieldSpec(type="text", unique=True)
        args: list[Any] = []
        if spec.type == "ref" and spec.ref_table in data.tables:
            args.append(sa.ForeignKey(f"{schema}.{spec.ref}" if schema else spec.ref))
        col_type = _column_type(target, [row[i] for row in table.rows[:2000]], keyed=spec.unique or
                                spec.type == "ref" or name == "id")
        columns.append(sa.Column(name, col_type, *args, primary_key=name == "id",
                                 unique=spec.unique and name != "id", nullable=spec.nullable > 0))
    return sa.Table(table.name, metadata, *columns, schema=schema)


def _column_type(spec: FieldSpec, sample: list[Any], *, keyed: bool) -> Any:
    kind = spec.type
    if kind == "uuid":
        return sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
    fixed: dict[str, Any] = {"int": sa.BigInteger(), "float": sa.Double(), "bool": sa.Boolean(),
                             "date": sa.Date(), "timestamp": sa.DateTime(), "json": sa.JSON()}
    if kind in fixed:
        return fixed[kind]
    if kind == "decimal":
        lo, hi = spec.range()
        digits = len(str(int(max(abs(lo), abs(hi))))) + spec.scale
        return sa.Numeric(precision=max(digits, spec.scale + 1), scale=spec.scale)
    if kind == "enum":
        return sa.String(max(len(v) for v in spec.values))
    if kind == "faker":
        value = next((v for v in sample if v is not None), "")
        for python_type, sql_type in ((bool, sa.Boolean()), (int, sa.BigInteger()), (float, sa.Double()),
                                      (Decimal, sa.Numeric(30, 10)), (dict, sa.JSON()), (list, sa.JSON())):
            if isinstance(value, python_type):
                return sql_type
        if hasattr(value, "isoformat"):
            return sa.DateTime() if hasattr(value, "hour") else sa.Date()
    if keyed:  # MySQL can index at most 768 utf8mb4 characters
        return sa.String(768 if kind == "text" else 255)
    return sa.Text()


def _copy(conn: Connection, table: sa.Table, data: TableData) -> None:
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(table)
    names = ", ".join(preparer.quote_identifier(c) for c in data.columns)
    raw = conn.connection.driver_connection
    assert raw is not None
    # COPY takes JSON as text whatever the column type.
    rows = _serialize(data, [True] * len(data.columns))
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _serialize(data: TableData, text_json: list[bool]) -> list[tuple[Any, ...]] | list[list[Any]]:
    """Rows with dict/list values as JSON text where ``text_json`` says the column wants text."""
    nested = [i for i, c in enumerate(data.columns) if text_json[i] and _has_nested(data, c)]
    if not nested:
        return data.rows
    out = []
    for row in data.rows:
        values = list(row)
        for i in nested:
            if isinstance(values[i], dict | list):
                values[i] = json.dumps(jsonable(values[i]))
        out.append(values)
    return out


def _has_nested(data: TableData, column: str) -> bool:
    spec = data.specs.get(column)
    if spec is not None and spec.type == "json":
        return True
    i = data.columns.index(column)
    return any(isinstance(row[i], dict | list) for row in data.rows[:100])


def _insert(conn: Connection, table: sa.Table, data: TableData) -> None:
    statement = table.insert()
    columns = data.columns
    rows = _serialize(data, [not isinstance(table.c[c].type, sa.JSON) for c in columns])
    for start in range(0, len(rows), _BATCH):
        batch = [dict(zip(columns, row, strict=True)) for row in rows[start:start + _BATCH]]
        conn.execute(statement, batch)


def _report(conn: Connection, tables: list[sa.Table], sample_rows: int
            ) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
    counts = {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()) for t in tables}
    sample = {t.name: [{k: jsonable(v) for k, v in row._mapping.items()}
                       for row in conn.execute(sa.select(t).limit(sample_rows))] for t in tables}
    return counts, sample
