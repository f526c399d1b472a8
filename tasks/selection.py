"""Select the tests a change affects, with history from earlier runs' artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.records import load_records
from tasks.reports import read_history
from testpilot.graph import build_graph
from testpilot.graph.build import app_id
from testpilot.graph.model import NodeKind
from testpilot.results import Reason, SelectedTest, Selection, TestResult
from testpilot.selection import History, summary_markdown
from testpilot.selection import select_tests as select
from testpilot.selection.git import repo_root
from testpilot.settings import get_settings
from testpilot.source import SourceTree
from testpilot.suite import Suite


def app_dependents(suite: Suite) -> Callable[[str], list[str]]:
    """Apps that depend on an app, through the backlink graph (transitively)."""
    graph = build_graph(suite, scan_test_markers=False)

    def dependents(app: str) -> list[str]:
        return [graph.node(n).label for n in graph.dependents(app_id(app), transitive=True)
                if graph.node(n).kind == NodeKind.APP]
    return dependents


def history_of(suite_name: str, runs: int = 20) -> History:
    """Selection history from the last runs' result tables (oldest first)."""
    tables = list(reversed(read_history(suite_name, runs)))
    return History.from_results(
        (str(i), [TestResult(app=r["app"], node_id=r["node_id"], outcome=r["outcome"],
                             duration=float(r.get("duration", 0))) for r in rows])
        for i, rows in enumerate(tables))


@task(name="select-tests", **TASK_DEFAULTS)
def select_tests(suite_path: str, base: str, head: str | None, full: bool = False, budget: str | None = None,
                 confidence: float | None = None, source: SourceTree | None = None) -> Selection:
    """``head`` None: the working tree. ``source``: the materialised tree the suite file was read from."""
    suite = source.in_repo(suite_at(suite_path)) if source else suite_at(suite_path)
    root = repo_root(suite.root)
    options: dict[str, Any] = {"history": history_of(suite.name), "cache_dir": Path(get_settings().home) / "selection-cache",
               "dependents": app_dependents(suite)}
    if full:
        everything = select(root, head, head, suite, **options)
        selection = everything.model_copy(update={"mode": "full", "skipped": [], "selected": [
            SelectedTest(app=t.app, test_id=t.test_id, reasons=[Reason(strategy="full", text="full regression run")])
            for t in everything.selected + everything.skipped]})
    else:
        selection = select(root, base, head, suite, budget=budget, confidence=confidence,
                           records=load_records(suite, base), **options)
    get_run_logger().info("selected %d test(s), skipped %d, unanalysable changes %d", len(selection.selected),
                          len(selection.skipped), len(selection.unanalysable))
    create_markdown_artifact(summary_markdown(selection), key="testpilot-selection",
                             description="Selected, skipped and unanalysable, with reasons")
    return selection
