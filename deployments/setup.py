"""Create the process work pool and register Testpilot's blocks. Safe to run any number of times.

    uv run python -m deployments.setup [--pool testpilot-process]

Blocks are made from environment variables when they are set: ``TESTPILOT_POSTGRES_URL`` and
``TESTPILOT_MYSQL_URL`` become ``DatabaseServer`` blocks named ``testpilot-postgres`` and
``testpilot-mysql``. Values are never printed.
"""

from __future__ import annotations

import argparse
import os
from typing import Literal

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from pydantic import SecretStr

from blocks.database import DatabaseServer
from blocks.github import GitHubIssues
from blocks.notifications import SmtpEmail

POOL = "testpilot-process"


def ensure_work_pool(name: str = POOL) -> bool:
    """Return True when the pool was created, False when it already existed."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True
        except ObjectAlreadyExists:
            return False


def register_blocks() -> list[str]:
    for block_type in (DatabaseServer, GitHubIssues, SmtpEmail):  # so the UI offers them
        block_type.register_type_and_schema()
    saved = []
    kinds: tuple[tuple[Literal["postgres", "mysql"], str], ...] = (
        ("postgres", "TESTPILOT_POSTGRES_URL"), ("mysql", "TESTPILOT_MYSQL_URL"))
    for kind, var in kinds:
        if os.environ.get(var):
            DatabaseServer(kind=kind, url=SecretStr(os.environ[var])).save(f"testpilot-{kind}", overwrite=True)
            saved.append(f"testpilot-{kind}")
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=POOL)
    args = parser.parse_args()
    created = ensure_work_pool(args.pool)
    print(f"work pool {args.pool}: {'created' if created else 'already there'}")
    saved = register_blocks()
    print(f"blocks registered; saved: {', '.join(saved) or 'none (no TESTPILOT_*_URL set)'}")


if __name__ == "__main__":
    main()
