"""Per-environment databases: a SQLite file, or a dedicated PostgreSQL/MySQL database on a server.

Names are derived from the environment id and the run id only ([a-z0-9_]), and are still quoted
through SQLAlchemy's identifier preparer, so nothing from config reaches SQL unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from testpilot.environments.config import ServiceConfig
from testpilot.errors import ProvisioningError
from testpilot.testdata.namespaces import engine_url

DB_PREFIX = "tp_"


def database_name(env_id: str, run_id: str, service: str) -> str:
    """``tp_<32 hex of the run id>_<env>_<service>``, cut to 63 characters; the run id always survives."""
    raw = f"{DB_PREFIX}{run_id.replace('-', '')}_{env_id}_{service}".lower()
    return re.sub(r"[^a-z0-9_]", "_", raw)[:63]


def run_of_database(name: str) -> str | None:
    """The run id a per-environment database belongs to, or None for other names."""
    match = re.fullmatch(rf"{DB_PREFIX}([0-9a-f]{{32}})_.+", name)
    if not match:
        return None
    h = match.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def gc_databases(server_url: str, is_run_finished: Callable[[str], bool]) -> list[str]:
    """Drop per-environment databases whose run is over (the reaper and ``testpilot data gc``)."""
    dropped = []
    for name in list_databases(server_url):
        run_id = run_of_database(name)
        if run_id and is_run_finished(run_id):
            drop_database(make_url(server_url).set(database=name).render_as_string(hide_password=False))
            dropped.append(name)
    return dropped


def _admin_engine(url: str) -> sa.Engine:
    # A plain postgresql:// or mysql:// URL gets this project's drivers (psycopg 3, PyMySQL), as test data does.
    return sa.create_engine(engine_url(url), isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _server_url(service: ServiceConfig, postgres_url: str | None, mysql_url: str | None) -> str | None:
    if service.url:
        return service.url
    return {"postgres": postgres_url, "mysql": mysql_url}.get(service.type)


def create_database(service_name: str, service: ServiceConfig, *, env_id: str, run_id: str, workdir: Path,
                    postgres_url: str | None = None, mysql_url: str | None = None) -> str:
    """Create the service's database and return its SQLAlchemy URL.

    A postgres or mysql service with no server URL configured falls back to a SQLite file, so the
    demo works on a machine with no database server.
    """
    server = _server_url(service, postgres_url, mysql_url)
    if service.type == "sqlite" or not server:
        return f"sqlite:///{workdir / (service_name + '.db')}"
    name = database_name(env_id, run_id, service_name)
    url = make_url(server)
    engine = _admin_engine(server)
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote_identifier(name)
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except sa.exc.SQLAlchemyError as exc:
        raise ProvisioningError(f"cannot create database {name} on {url.host}:{url.port}: "
                                f"{exc.__class__.__name__}: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}",
                                host=str(url.host), phase="provision",
                                hint="check the server URL (TESTPILOT_POSTGRES_URL / services.*.url)") from None
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database created by ``create_database``; a SQLite file is removed with its folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" or not (parsed.database or "").startswith(DB_PREFIX):
        return
    admin_db = "postgres" if parsed.get_backend_name() == "postgresql" else None
    engine = _admin_engine(parsed.set(database=admin_db).render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote_identifier(parsed.database or "")
            if parsed.get_backend_name() == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
    finally:
        engine.dispose()


def drop_databases_quietly(urls: Iterable[str]) -> None:
    """Drop each of an environment's databases on release; one that fails is left for the reaper's gc."""
    for url in urls:
        try:
            drop_database(url)
        except Exception:  # noqa: BLE001 - the reaper retries; keep releasing the rest
            pass


def list_databases(server_url: str) -> list[str]:
    """Names of the databases Testpilot created on a server (for the reaper and tests)."""
    parsed = make_url(server_url)
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                rows = conn.execute(sa.text("SELECT datname FROM pg_database"))
            else:
                rows = conn.execute(sa.text("SHOW DATABASES"))
            return sorted(r[0] for r in rows if str(r[0]).startswith(DB_PREFIX))
    finally:
        engine.dispose()
