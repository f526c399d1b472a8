"""Shared fixtures: the suite example datasets and real database URLs (skipped off CI, failing on CI)."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from testpilot.testdata import DatasetConfig
from testpilot.testdata.namespaces import engine_url

PG_URL = os.environ.get("TESTPILOT_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("TESTPILOT_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")


def example_datasets() -> dict[str, DatasetConfig]:
    """The issue-2 suite example, exactly as a suite file declares it."""
    return {
        "users": DatasetConfig.model_validate(
            {"count": 10, "schema": {"id": "uuid", "name": "name", "email": "email", "created_at": "timestamp"}}),
        "payment_methods": DatasetConfig.model_validate(
            {"count": 5, "schema": {"id": "uuid", "user_id": "ref:users.id",
                                    "type": "enum:credit_card,paypal,bank_transfer", "details": "json"}}),
    }


def _reachable(url: str, what: str) -> str:
    try:
        engine = sa.create_engine(engine_url(url))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means the service is not there
        message = f"{what} not reachable at {url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _reachable(PG_URL, "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _reachable(MARIADB_URL, "MariaDB")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def example() -> dict[str, DatasetConfig]:
    return example_datasets()
