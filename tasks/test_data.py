"""Seed the declared datasets into an environment's databases."""

from __future__ import annotations

from prefect import get_run_logger, task

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.environments.base import Environment
from testpilot.testdata.simple import seed


@task(name="seed-data", **TASK_DEFAULTS)
def seed_data(suite_path: str, env: Environment) -> dict[str, dict[str, int]]:
    suite = suite_at(suite_path)
    loaded: dict[str, dict[str, int]] = {}
    if not suite.data:
        return loaded
    for service, url in env.databases.items():
        loaded[service] = seed(url, suite.data)
        get_run_logger().info("seeded %s in %s: %s", ", ".join(suite.data), service, loaded[service])
    return loaded
