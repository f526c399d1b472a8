"""Select the tests a change affects."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import TASK_DEFAULTS, repo_root, suite_at
from testpilot.reporting import selection_markdown
from testpilot.results import Selection
from testpilot.selection.simple import all_tests, select


@task(name="select-tests", **TASK_DEFAULTS)
def select_tests(suite_path: str, base: str, head: str, full: bool = False) -> Selection:
    suite = suite_at(suite_path)
    if full:
        selection = all_tests(suite)
    else:
        selection = select(suite, repo_root(suite.root), base, head)
    get_run_logger().info("selected %d test(s), skipped %d", len(selection.selected), len(selection.skipped))
    create_markdown_artifact(selection_markdown(selection), key="testpilot-selection",
                             description="Selected and skipped tests, with reasons")
    return selection

