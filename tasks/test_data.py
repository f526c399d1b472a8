"""Generate the declared datasets (cached by schema, seed and version) and load them per run.

Generation is a Prefect task cached on ``dataset_identity``: an identical dataset is read back from
Prefect's result storage instead of being generated again. Each run loads into its own namespace
(a PostgreSQL schema, a MySQL database or a SQLite file) named from the flow run id, and the app
sees that namespace through its ``TESTPILOT_DB_<SERVICE>`` variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.environments.base import Environment

if TYPE_CHECKING:
    from testpilot.testdata import GeneratedData

# Faker, psycopg and the loaders are imported where data is generated or loaded: a node or a run
# whose suite declares no data does not pay for them at start-up.


def _identity(_context: Any, parameters: dict[str, Any]) -> str:
    from testpilot.testdata import dataset_identity

    return "testpilot-data-" + dataset_identity(suite_at(parameters["suite_path"]).data)


@task(name="generate-data", cache_key_fn=_identity, persist_result=True)
def generate_data(suite_path: str) -> GeneratedData:
    from testpilot.testdata import generate

    suite = suite_at(suite_path)
    return generate(suite.data, source=suite.source, lines=suite._lines)


@task(name="seed-data", **TASK_DEFAULTS)
def seed_data(suite_path: str, env: Environment, apps: list[str], run_id: str) -> Environment:
    """Load the run's data into each of the environment's databases; return the env pointing at it."""
    suite = suite_at(suite_path)
    if not suite.data or not env.databases:
        return env
    from testpilot.environments.staging import local_sqlite, publish_sqlite
    from testpilot.testdata.seeding import seed_environment

    env, markdown = seed_environment(env, suite.data, generate_data(suite_path), apps, run_id, get_run_logger())
    create_markdown_artifact(markdown, key="testpilot-data", description="Seeded datasets and samples")
    if env.transport == "ssh" and local_sqlite(env):  # SQLite is seeded here on the worker, then copied
        from tasks.environments import connection

        with connection(suite_path, env) as remote:
            env = publish_sqlite(env, remote)
    return env


def drop_data(env: Environment, run_id: str) -> list[str]:
    """Drop the run's namespaces from every database of the environment (teardown; safe to repeat)."""
    from testpilot.testdata import drop_run_data

    dropped: list[str] = []
    for url in env.databases.values():
        dropped += drop_run_data(url, run_id)
    return dropped
