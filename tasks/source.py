"""Materialise the commit under test once per run, into ``$TESTPILOT_HOME/runs/<run>/tree``."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import get_run_logger, task

from tasks.common import TASK_DEFAULTS
from testpilot.settings import get_settings
from testpilot.source import SourceTree, prepare_source, resolve_suite_path


def run_folder(run_id: str) -> Path:
    return get_settings().home / "runs" / run_id.replace("-", "")[:12]


@task(name="checkout-head", task_run_name="checkout[{head}]", **TASK_DEFAULTS)
def checkout_head(suite: str, repo: str | None, head: str, run_id: str, field: str = "--suite",
                  base: str | None = None) -> SourceTree:
    """Resolve ``head`` and write that commit's tree for this run; the working tree is used as is."""
    path = resolve_suite_path(suite, repo, Path.cwd(), field=field)
    tree = prepare_source(path, head, run_folder(run_id) / "tree", repo=repo, field=field, base=base)
    for note in tree.notes:
        get_run_logger().info("%s", note)
    return tree


def drop_source_hook(flow: object, flow_run: object, state: object) -> None:
    """Flow hook (any end): remove the run's materialised tree."""
    shutil.rmtree(run_folder(str(getattr(flow_run, "id", ""))), ignore_errors=True)
