"""Categorise, cluster and route failures; publish clusters as an artifact and one event per cluster.

Cluster history across runs is the latest version of the ``testpilot-cluster-history-<suite>`` table
artifact: read it, match this run's clusters against it, write the updated list back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.reports import artifact_key, history_key, latest_table, read_runs
from testpilot.failures import (
    analyse_failures as analyse,
)
from testpilot.failures import (
    cluster_event,
    cluster_rows,
    records_from_shard,
    render_text,
    report_section,
    updated_history,
)
from testpilot.results import ShardResult
from testpilot.selection.git import repo_root
from testpilot.suite import Suite
from testpilot.test_history import same_commit_outcomes

CODEOWNERS_PLACES = ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS")


def codeowners_text(suite: Suite, root: Path) -> str:
    """The suite's app owners as CODEOWNERS lines, then the repository's own file (later lines win)."""
    lines = [f"/{suite.app_dir(app).relative_to(root).as_posix()}/ {' '.join(cfg.owners)}"
             for app, cfg in suite.apps.items() if cfg.owners and suite.app_dir(app).is_relative_to(root)]
    for place in CODEOWNERS_PLACES:
        if (root / place).is_file():
            lines.append((root / place).read_text())
            break
    return "\n".join(lines)


def failures_markdown(section: dict[str, Any]) -> str:
    return ("# Failures\n\n```text\n" + render_text(section) + "\n```\n\n<details><summary>data</summary>\n\n"
            "```json\n" + json.dumps(section, default=str) + "\n```\n</details>\n")


def section_from_markdown(text: str) -> dict[str, Any]:
    """The report section back out of a failures artifact."""
    body = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    return dict(json.loads(body))


@task(name="analyse-failures", **TASK_DEFAULTS)
def analyse_failures(suite_path: str, shards: list[ShardResult], changed_files: list[str], run_id: str,
                     flow_run_url: str = "", root: str | None = None, head_commit: str = "") -> dict[str, Any]:
    """``root``: the top of the tested tree (CODEOWNERS, app paths); default the suite's repository.
    ``head_commit``: the commit under test; failing tests' outcomes in earlier runs of it are flakiness
    evidence (a flip between runs of one commit)."""
    suite = suite_at(suite_path)
    top = Path(root) if root else repo_root(suite.root)
    records = [rec for shard in shards for rec in records_from_shard(shard, shard.reruns)]
    failing = list(dict.fromkeys((r.app, r.test_id) for r in records))
    runs = read_runs(history_key(suite.name), 10) if failing and head_commit else []
    clusters_key = artifact_key("testpilot-cluster-history", suite.name)
    past = latest_table(clusters_key)
    analysis = analyse(records, suite.failures, run_id=run_id, flow_run_url=flow_run_url,
                       changed_files=changed_files, past_clusters=past, codeowners=codeowners_text(suite, top),
                       app_paths={a: suite.app_dir(a).relative_to(top).as_posix() for a in suite.apps
                                  if suite.app_dir(a).is_relative_to(top)},
                       hosts_in_run=[s.host for s in shards if s.host],
                       test_history=same_commit_outcomes(failing, head_commit, runs) or None)
    if analysis.clusters:
        create_table_artifact(cluster_rows(analysis), key=artifact_key("testpilot-clusters", suite.name),
                              description="Failure clusters of this run: category, defect type, owner, suggestion")
        create_table_artifact(updated_history(past, analysis.clusters), key=clusters_key,
                              description="Failure clusters across runs (first/last seen, occurrences)")
        for cluster in analysis.clusters:
            emit_event(**cluster_event(cluster, run_id=run_id, flow_run_url=flow_run_url))
    section = report_section(analysis)
    create_markdown_artifact(failures_markdown(section), key=artifact_key("testpilot-failures", suite.name),
                             description="Failure clusters (text, and the JSON `testpilot failures --run` reads)")
    # Each test keeps its own category (its cluster reports the mix); the same verdicts `testpilot analyse` prints.
    per_test = [{"app": v.app, "node_id": v.test_id, "category": v.category, "defect_type": v.defect_type,
                 "owner": v.owner or "unowned", "message": v.message, "cluster": v.cluster}
                for v in analysis.tests]
    return {"section": section, "per_test": per_test, "dirty_hosts": analysis.dirty_hosts}
