"""Seed an environment's databases for one run: each database gets the datasets bound for it, loaded into
the run's own namespace, and the app's variable is pointed there."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from testpilot.environments.base import Environment, database_variable
from testpilot.testdata.config import DatasetConfig
from testpilot.testdata.generate import GeneratedData
from testpilot.testdata.loading import LoadReport, load
from testpilot.testdata.namespaces import namespace_url


def datasets_for(datasets: Mapping[str, DatasetConfig], env_apps: list[str], service: str) -> list[str]:
    """Datasets bound for a service: no targets, or a target naming one of the env's apps (or app.service)."""
    wanted = {*env_apps, *(f"{a}.{service}" for a in env_apps)}
    return [name for name, ds in datasets.items() if not ds.targets or wanted & set(ds.targets)]


def seed_environment(env: Environment, datasets: Mapping[str, DatasetConfig], data: GeneratedData,
                     apps: list[str], run_id: str, log: logging.Logger | logging.LoggerAdapter[Any],
                     ) -> tuple[Environment, str]:
    """A copy of ``env`` whose database variables point at this run's seeded namespaces, and a markdown
    account of what was loaded where (row counts and a few sample rows)."""
    env = env.model_copy(deep=True)
    lines = [f"# Test data for {env.id}", "", f"Dataset identity `{data.identity}`", ""]
    for service, url in env.databases.items():
        names = datasets_for(datasets, apps, service)
        if not names:
            continue
        label = service.replace("-", "_")
        report = load(url, data.subset(names), run_id=run_id, label=label)
        env.env[database_variable(service)] = namespace_url(url, run_id, label)
        env.metadata.setdefault("data_namespaces", {})[service] = report.namespace
        log.info("loaded %s into %s (%s, %s)", report.row_counts, report.namespace, report.dialect, report.method)
        lines += _loaded(service, report)
    return env, "\n".join(lines)


def _loaded(service: str, report: LoadReport) -> list[str]:
    lines = [f"## {service}: `{report.namespace}` ({report.method}, {report.seconds:.2f}s)", "",
             "| table | rows |", "|---|---|", *[f"| {t} | {n} |" for t, n in report.row_counts.items()], ""]
    for table, rows in report.sample.items():
        if rows:
            lines += [f"Sample of `{table}`:", "", "```json", *[str(r) for r in rows], "```", ""]
    return lines
