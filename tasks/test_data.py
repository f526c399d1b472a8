"""Generate the declared datasets (cached by schema, seed and version) and load them per run.

Generation is a Prefect task cached on ``dataset_identity``: an identical dataset is read back from
Prefect's result storage instead of being generated again. Each run loads into its own namespace
(a PostgreSQL schema, a MySQL database or a SQLite file) named from the flow run id, and the app
sees that namespace through its ``TESTPILOT_DB_<SERVICE>`` variable.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.environments.base import Environment, database_variable
from testpilot.environments.staging import local_sqlite, publish_sqlite
from testpilot.suite import Suite
from testpilot.testdata import GeneratedData, dataset_identity, drop_run_data, generate, load, namespace_url


def _identity(_context: Any, parameters: dict[str, Any]) -> str:
    return "testpilot-data-" + dataset_identity(suite_at(parameters["suite_path"]).data)


@task(name="generate-data", cache_key_fn=_identity, persist_result=True)
def generate_data(suite_path: str) -> GeneratedData:
    suite = suite_at(suite_path)
    return generate(suite.data, source=suite.source, lines=suite._lines)


def datasets_for(suite: Suite, env_apps: list[str], service: str) -> list[str]:
    """Datasets bound for a service: no targets, or a target naming one of the env's apps (or app.service)."""
    wanted = {*env_apps, *(f"{a}.{service}" for a in env_apps)}
    return [name for name, ds in suite.data.items() if not ds.targets or wanted & set(ds.targets)]


@task(name="seed-data", **TASK_DEFAULTS)
def seed_data(suite_path: str, env: Environment, apps: list[str], run_id: str) -> Environment:
    """Load the run's data into each of the environment's databases; return the env pointing at it."""
    suite = suite_at(suite_path)
    if not suite.data or not env.databases:
        return env
    data = generate_data(suite_path)
    env = env.model_copy(deep=True)
    lines = [f"# Test data for {env.id}", "", f"Dataset identity `{data.identity}`", ""]
    for service, url in env.databases.items():
        names = datasets_for(suite, apps, service)
        if not names:
            continue
        report = load(url, data.subset(names), run_id=run_id, label=service.replace("-", "_"))
        env.env[database_variable(service)] = namespace_url(
            url, run_id, service.replace("-", "_"))
        env.metadata.setdefault("data_namespaces", {})[service] = report.namespace
        get_run_logger().info("loaded %s into %s (%s, %s)", report.row_counts, report.namespace, report.dialect,
                              report.method)
        lines += [f"## {service}: `{report.namespace}` ({report.method}, {report.seconds:.2f}s)", "",
                  "| table | rows |", "|---|---|", *[f"| {t} | {n} |" for t, n in report.row_counts.items()], ""]
        for table, rows in report.sample.items():
            if rows:
                lines += [f"Sample of `{table}`:", "", "```json", *[str(r) for r in rows], "```", ""]
    create_markdown_artifact("\n".join(lines), key="testpilot-data", description="Seeded datasets and samples")
    if env.transport == "ssh" and local_sqlite(env):  # SQLite is seeded here on the worker, then copied
        from tasks.environments import connection

        with connection(suite_path, env) as remote:
            env = publish_sqlite(env, remote)
    return env


def drop_data(env: Environment, run_id: str) -> list[str]:
    """Drop the run's namespaces from every database of the environment (teardown; safe to repeat)."""
    dropped: list[str] = []
    for url in env.databases.values():
        dropped += drop_run_data(url, run_id)
    return dropped
