"""Storage of payments in the database named by a SQLAlchemy-style URL.

SQLite URLs use the stdlib; PostgreSQL URLs use psycopg. The app has no ORM on purpose: one table,
two queries, and a fast virtualenv install.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

DEFAULT_URL = "sqlite:///payments.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id VARCHAR(64) PRIMARY KEY,
    user_id VARCHAR(64) NOT NULL,
    amount INTEGER NOT NULL,
    currency VARCHAR(3) NOT NULL,
    method VARCHAR(32) NOT NULL,
    fee INTEGER NOT NULL,
    status VARCHAR(32) NOT NULL,
    card_last4 VARCHAR(4),
    created_at VARCHAR(40) NOT NULL
)
"""
COLUMNS = ("id", "user_id", "amount", "currency", "method", "fee", "status", "card_last4", "created_at")


class DatabaseUnavailable(ConnectionError):
    pass


def sqlite_path(url: str) -> str:
    """'sqlite:///rel.db' -> 'rel.db', 'sqlite:////abs.db' -> '/abs.db', 'sqlite://' -> ':memory:'."""
    rest = url.split(":", 1)[1]
    if rest in ("", "//", "///:memory:"):
        return ":memory:"
    if not rest.startswith("///"):
        raise ValueError(f"not a SQLite URL: {url!r}")
    return rest[3:]


class Database:
    """One DB-API connection with ``?`` placeholders whatever the driver."""

    def __init__(self, url: str) -> None:
        self.url = url
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        try:
            if scheme == "sqlite":
                self.conn: Any = sqlite3.connect(sqlite_path(url), timeout=10)
                self.placeholder = "?"
            elif scheme in ("postgresql", "postgres"):
                try:
                    import psycopg
                except ImportError:
                    raise DatabaseUnavailable("database is unreachable: psycopg is not installed") from None
                self.conn = psycopg.connect("postgresql:" + url.split(":", 1)[1], connect_timeout=5)
                self.placeholder = "%s"
            else:
                raise ValueError(f"unsupported database URL scheme {scheme!r}")
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseUnavailable(f"database is unreachable: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise DatabaseUnavailable(f"database is unreachable: {exc}") from exc
            raise

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(self.conn.cursor()) as cur:
            cur.execute(sql.replace("?", self.placeholder), params)
            rows = cur.fetchall() if cur.description else []
        self.conn.commit()
        return rows

    def table_exists(self, name: str) -> bool:
        if self.placeholder == "?":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_name = ?"
        return bool(self.execute(sql, (name,)))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PaymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.execute(SCHEMA)

    def insert(self, payment: dict[str, Any]) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        self.db.execute(f"INSERT INTO payments ({', '.join(COLUMNS)}) VALUES ({marks})",
                        tuple(payment.get(c) for c in COLUMNS))

    def get(self, payment_id: str) -> dict[str, Any] | None:
        rows = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM payments WHERE id = ?", (payment_id,))
        return dict(zip(COLUMNS, rows[0], strict=True)) if rows else None

    def set_status(self, payment_id: str, status: str) -> None:
        self.db.execute("UPDATE payments SET status = ? WHERE id = ?", (status, payment_id))

    def for_user(self, user_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM payments WHERE user_id = ? ORDER BY created_at, id", (user_id,))
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
