"""Categorise, cluster and route failures; publish clusters as an artifact and one event per cluster.

Cluster history across runs is the latest version of the ``testpilot-cluster-history-<suite>`` table
artifact: read it, match this run's clusters against it, write the updated list back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.reports import artifact_key, history_key, latest_table, read_runs
from testpilot.failures import analyse_failures as analyse
from testpilot.failures import (
    cluster_event,
    cluster_rows,
    records_from_shard,
    report_section,
    updated_history,
)
from testpilot.failures.files import suite_ownership
from testpilot.failures.model import FailureAnalysis
from testpilot.failures.report import failures_markdown, verdict_rows
from testpilot.results import ShardResult
from testpilot.selection.git import repo_root
from testpilot.test_history import same_commit_outcomes


@task(name="analyse-failures", **TASK_DEFAULTS)
def analyse_failures(suite_path: str, shards: list[ShardResult], changed_files: list[str], run_id: str,
                     flow_run_url: str = "", root: str | None = None, head_commit: str = "") -> dict[str, Any]:
    """``root``: the top of the tested tree (CODEOWNERS, app paths); default the suite's repository.
    ``head_commit``: the commit under test; failing tests' outcomes in earlier runs of it are flakiness
    evidence (a flip between runs of one commit)."""
    suite = suite_at(suite_path)
    records = [rec for shard in shards for rec in records_from_shard(shard, shard.reruns)]
    failing = list(dict.fromkeys((r.app, r.test_id) for r in records))
    runs = read_runs(history_key(suite.name), 10) if failing and head_commit else []
    past = latest_table(artifact_key("testpilot-cluster-history", suite.name))
    analysis = analyse(records, suite.failures, run_id=run_id, flow_run_url=flow_run_url, changed_files=changed_files,
                       past_clusters=past, hosts_in_run=[s.host for s in shards if s.host],
                       test_history=same_commit_outcomes(failing, head_commit, runs) or None,
                       **suite_ownership(suite, Path(root) if root else repo_root(suite.root)))
    publish_clusters(analysis, suite.name, past, run_id, flow_run_url)
    section = report_section(analysis)
    create_markdown_artifact(failures_markdown(section), key=artifact_key("testpilot-failures", suite.name),
                             description="Failure clusters (text, and the JSON `testpilot failures --run` reads)")
    return {"section": section, "per_test": verdict_rows(analysis), "dirty_hosts": analysis.dirty_hosts}


def publish_clusters(analysis: FailureAnalysis, suite_name: str, past: list[dict[str, Any]], run_id: str,
                     flow_run_url: str) -> None:
    """This run's clusters as a table, the cluster history updated, and one event per cluster."""
    if not analysis.clusters:
        return
    create_table_artifact(cluster_rows(analysis), key=artifact_key("testpilot-clusters", suite_name),
                          description="Failure clusters of this run: category, defect type, owner, suggestion")
    create_table_artifact(updated_history(past, analysis.clusters),
                          key=artifact_key("testpilot-cluster-history", suite_name),
                          description="Failure clusters across runs (first/last seen, occurrences)")
    for cluster in analysis.clusters:
        emit_event(**cluster_event(cluster, run_id=run_id, flow_run_url=flow_run_url))
