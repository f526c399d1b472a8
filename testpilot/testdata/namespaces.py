"""Per-run namespaces: a PostgreSQL schema, a MySQL/MariaDB database or a SQLite file per run and label.

Names look like ``tp_<run id as 32 hex>_<label>`` so the run id can be read back from what a dead run
left behind; ``gc`` drops those whose run is over. Names are built from hex and ``[a-z0-9_]`` only, and
are still quoted through the dialect's identifier preparer wherever they reach SQL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from testpilot.errors import ConfigError, InfrastructureError

PREFIX = "tp_"
LABEL_MAX = 20
_NAME = re.compile(rf"^tp_([0-9a-f]{{32}})_([a-z0-9_]{{1,{LABEL_MAX}}})$")
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
            "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


@dataclass(frozen=True)
class RunNamespace:
    """A namespace found in a database: its name, the run id it belongs to and its label."""

    name: str
    run_id: str
    label: str


def engine_url(url: str | URL) -> URL:
    """The URL with this project's drivers (psycopg 3, PyMySQL) when none is named."""
    parsed = make_url(url)
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    return parsed


def dialect_of(url: str | URL) -> str:
    name = engine_url(url).get_backend_name()
    if name in ("postgresql", "sqlite"):
        return name
    if name in ("mysql", "mariadb"):
        return "mysql"
    raise ConfigError(f"unsupported database {name!r} for test data", field="url",
                      hint="use a postgresql://, mysql://, mariadb:// or sqlite:///FILE url")


def _run_hex(run_id: str) -> str:
    try:
        return uuid.UUID(str(run_id)).hex
    except ValueError:
        raise ConfigError(f"run id {run_id!r} is not a UUID", field="run_id",
                          hint="pass the Prefect flow run id (a UUID)") from None


def clean_label(label: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:LABEL_MAX].strip("_")
    return text or "default"


def namespace_name(run_id: str, label: str = "default") -> str:
    """``tp_<32 hex>_<label>``; the label (environment or app) is reduced to ``[a-z0-9_]``, 20 chars."""
    return f"{PREFIX}{_run_hex(run_id)}_{clean_label(label)}"


def parse_namespace(name: str) -> RunNamespace | None:
    """The run id and label inside a namespace name, or None if it is not one of ours."""
    match = _NAME.match(name)
    if not match:
        return None
    return RunNamespace(name, str(uuid.UUID(match.group(1))), match.group(2))


def sqlite_path(url: URL, namespace: str) -> Path:
    base = _sqlite_base(url)
    return base.with_name(f"{base.stem}.{namespace}{base.suffix or '.db'}")


def _sqlite_base(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot hold per-run files", field="url",
                          hint="use sqlite:////path/app.db; each run gets a file beside it")
    return Path(url.database)


def namespace_url(url: str, run_id: str, label: str = "default") -> str:
    """The URL an app uses to see this run's data (search_path, database or file swapped in).

    The URL keeps the scheme it was given (``postgresql://`` stays libpq-readable).
    """
    parsed, name = make_url(url), namespace_name(run_id, label)
    dialect = dialect_of(parsed)
    if dialect == "postgresql":
        parsed = parsed.update_query_dict({"options": f"-csearch_path={name}"})
    elif dialect == "mysql":
        parsed = parsed.set(database=name)
    else:
        parsed = parsed.set(database=str(sqlite_path(parsed, name)))
    return parsed.render_as_string(hide_password=False)


@contextmanager
def connect_engine(url: str | URL, phase: str) -> Iterator[Engine]:
    """An engine without a pool (nothing lingers after a run); connection failures as InfrastructureError."""
    parsed = engine_url(url)
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        try:
            with engine.connect():
                pass
        except sa.exc.OperationalError as exc:
            raise InfrastructureError(f"cannot connect to the database: {exc.orig}", host=parsed.host or "",
                                      phase=phase, hint="check the URL and that the server is up") from None
        yield engine
    finally:
        engine.dispose()


def list_namespaces(url: str) -> list[RunNamespace]:
    """Namespaces that runs created in this database (and SQLite files beside it), sorted by name."""
    parsed = engine_url(url)
    if dialect_of(parsed) == "sqlite":
        base = _sqlite_base(parsed)
        found = set()
        for path in base.parent.glob(f"{base.stem}.{PREFIX}*"):
            middle = path.name[len(base.stem) + 1:].removesuffix(".partial")
            middle = middle.removesuffix(base.suffix or ".db")
            if (ns := parse_namespace(middle)) is not None:
                found.add(ns)
        return sorted(found, key=lambda n: n.name)
    with connect_engine(parsed, "list") as engine, engine.connect() as conn:
        names = sa.inspect(conn).get_schema_names()
    return sorted((ns for n in names if (ns := parse_namespace(n)) is not None), key=lambda n: n.name)


def drop_namespace(url: str, name: str) -> None:
    """Drop one namespace and everything in it; a missing one is fine."""
    if parse_namespace(name) is None:
        raise ConfigError(f"{name!r} is not a test data namespace", field="namespace",
                          hint="only tp_<run id>_<label> namespaces are dropped")
    parsed = engine_url(url)
    if dialect_of(parsed) == "sqlite":
        path = sqlite_path(parsed, name)
        for candidate in (path, path.with_name(path.name + ".partial")):
            candidate.unlink(missing_ok=True)
        return
    with connect_engine(parsed, "teardown") as engine, engine.begin() as conn:
        quoted = conn.dialect.identifier_preparer.quote_identifier(name)
        if dialect_of(parsed) == "postgresql":
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        else:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))


def drop_run_data(url: str, run_id: str, *, label: str | None = None) -> list[str]:
    """Drop this run's namespaces (one label, or all of them); returns the names dropped. Idempotent."""
    wanted = str(uuid.UUID(_run_hex(run_id)))
    dropped = []
    for ns in list_namespaces(url):
        if ns.run_id == wanted and (label is None or ns.label == clean_label(label)):
            drop_namespace(url, ns.name)
            dropped.append(ns.name)
    return dropped


def gc(url: str, is_run_finished: Callable[[str], bool]) -> list[str]:
    """Drop namespaces whose run ``is_run_finished(run_id)`` says is over; returns the names dropped.

    The callable is asked once per run id. If it raises, that run's namespaces are kept: a reaper must
    never drop the data of a run it is unsure about.
    """
    verdicts: dict[str, bool] = {}
    dropped = []
    for ns in list_namespaces(url):
        if ns.run_id not in verdicts:
            try:
                verdicts[ns.run_id] = bool(is_run_finished(ns.run_id))
            except Exception:  # noqa: BLE001 - unsure means keep
                verdicts[ns.run_id] = False
        if verdicts[ns.run_id]:
            drop_namespace(url, ns.name)
            dropped.append(ns.name)
    return dropped
