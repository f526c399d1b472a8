"""Categorise failed tests and route them to owners."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.failures.simple import analyse
from testpilot.results import TestResult


@task(name="analyse-failures", **TASK_DEFAULTS)
def analyse_failures(suite_path: str, results: list[TestResult]) -> list[dict[str, Any]]:
    suite = suite_at(suite_path)
    owners = {name: app.owners for name, app in suite.apps.items()}
    return [f.model_dump() for f in analyse(results, suite.failures, owners)]
