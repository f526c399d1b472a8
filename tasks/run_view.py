"""What the run page shows beyond the report: tags on the flow run, and the history of failing tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.reports import artifact_key, history_key, read_runs
from testpilot.results import Selection
from testpilot.source import locate
from testpilot.test_history import Seen, commits_between, histories, history_markdown


def tag_flow_run(tags: list[str]) -> None:
    """Add tags to the running flow run (a flow's own tags are fixed when it starts; these depend on the
    change under test)."""
    if not flow_run.id:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.id).tags or []
        client.update_flow_run(flow_run.id, tags=list(dict.fromkeys([*current, *tags])))


def rename_flow_run(name: str) -> None:
    """Give the running flow run ``name`` when it differs (its first name was computed before a fetch
    could resolve the refs in it)."""
    if not flow_run.id or not name or name == flow_run.name:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name)


@task(name="test-history", **TASK_DEFAULTS)
def failing_test_history(suite_path: str, suite_name: str, failures: list[dict[str, Any]], selection: Selection,
                         run_id: str, durations: dict[str, float], runs: int = 10) -> str:
    """History of each failing test over the suite's last ``runs`` runs, as markdown (also an artifact)."""
    if not failures:
        return ""
    past = [r for r in read_runs(history_key(suite_name), runs + 1) if r["run_id"] != run_id][:runs]
    tests = list(dict.fromkeys((f["app"], f["node_id"]) for f in failures))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    items = histories(tests, Seen("failed", 0.0, run_id, selection.head_commit, now), past)
    root = locate(suite_at(suite_path).root.resolve())[0]  # the repository, also for a materialised tree
    for h in items:
        h.seen[0].duration = durations.get(f"{h.app}::{h.node_id}", 0.0)
        if h.last_passed:
            h.changes = commits_between(root, h.last_passed.commit, selection.head_commit)
    text = history_markdown(items, len(past))
    create_markdown_artifact(text, key=artifact_key("testpilot-history", suite_name),
                             description="Failing tests: last outcomes, last pass, commits since")
    return text
