"""Progress, summary and table artifacts in Prefect, plus junit.xml and report.json on disk.

The table artifact keyed ``testpilot-results-<suite>`` doubles as run history: each run adds a
version, and later runs read the latest versions back for durations and failure rates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.runtime import deployment

from tasks.common import TASK_DEFAULTS
from tasks.verdict import store_results
from testpilot.reporting import result_rows, write_junit, write_report_json
from testpilot.results import Selection, ShardResult
from testpilot.run_report import NOT_RUN_PREFIX, failures_first, run_counts, run_summary_markdown
from testpilot.selection import write_selection_json


def artifact_key(prefix: str, suite_name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return f"{prefix}-" + re.sub(r"[^a-z0-9-]", "-", suite_name.lower())


def history_key(suite_name: str) -> str:
    return artifact_key("testpilot-results", suite_name)


def latest_table(key: str) -> list[dict[str, Any]]:
    """Rows of the newest version of a table artifact, or [] when there is none."""
    tables = _tables(key, 1)
    return tables[0] if tables else []


@task(name="progress", **TASK_DEFAULTS)
def start_progress(description: str) -> UUID:
    """A task, so the artifact sits with task runs and the run summary is the flow's only own artifact
    (the UI lists a flow run's own artifacts first)."""
    return create_progress_artifact(progress=0.0, description=description)  # type: ignore[return-value]


def set_progress(artifact_id: UUID, percent: float, description: str | None = None) -> None:
    update_progress_artifact(artifact_id=artifact_id, progress=min(100.0, max(0.0, percent)),
                             description=description)


def read_history(suite_name: str, runs: int = 10) -> list[list[dict[str, Any]]]:
    """Result rows of the last ``runs`` runs of this suite, newest first, from Prefect artifacts."""
    return [rows for rows in _tables(history_key(suite_name), runs) if rows]


def _tables(key: str, limit: int) -> list[list[dict[str, Any]]]:
    """Rows of the newest ``limit`` versions of a keyed table artifact, newest first."""
    return [run["rows"] for run in read_runs(key, limit)]


def read_runs(key: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` versions of a keyed table artifact, newest first, with their flow run and time."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                          sort=ArtifactSort.CREATED_DESC, limit=limit)
    return [{"run_id": str(a.flow_run_id or ""), "created": a.created.isoformat() if a.created else "",
             "rows": _rows(a.data)} for a in artifacts]


def _rows(data: Any) -> list[dict[str, Any]]:
    """Table artifacts come back as the JSON text of their rows."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return []
    return data if isinstance(data, list) else []


def known_durations(history: list[list[dict[str, Any]]]) -> dict[tuple[str, str], float]:
    """Latest known duration per (app, test file and node id)."""
    durations: dict[tuple[str, str], float] = {}
    for rows in reversed(history):
        files: dict[tuple[str, str], float] = {}
        for row in rows:
            if str(row.get("message", "")).startswith(NOT_RUN_PREFIX):
                continue  # never ran: no duration to learn
            durations[(row["app"], row["node_id"])] = float(row.get("duration", 0))
            key = (row["app"], str(row["node_id"]).split("::", 1)[0])
            files[key] = files.get(key, 0.0) + float(row.get("duration", 0))
        durations.update(files)
    return durations


@task(name="report", **TASK_DEFAULTS)
def publish_report(*, suite_name: str, selection: Selection, shards: list[ShardResult],
                   failures: list[dict[str, Any]], wall_seconds: float, results_dir: str, run_id: str,
                   graph_mermaid: str = "", extra: dict[str, Any] | None = None,
                   view: dict[str, Any] | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """Write the table, JUnit and JSON reports; return counts and the summary markdown, which the flow
    itself publishes (so it is the first artifact the run page lists)."""
    markdown = run_summary_markdown(suite=suite_name, selection=selection, shards=shards, failures=failures,
                                    wall_seconds=wall_seconds, graph_mermaid=graph_mermaid, notes=notes or (),
                                    **(view or {}))
    rows = failures_first([{**row, "commit": selection.head_commit} for row in result_rows(shards)])
    if rows:
        create_table_artifact(rows, key=history_key(suite_name), description="Test results of this run")
    out = Path(results_dir) / run_id
    write_junit(out / "junit.xml", shards)
    report = {"run_id": run_id, "suite": suite_name, "wall_seconds": wall_seconds,
              "base_commit": selection.base_commit, "head_commit": selection.head_commit, "notes": notes or [],
              "selection": selection.model_dump(), "results": rows, "failures": failures,
              "shards": [s.model_dump(exclude={"results"}) for s in shards], **(extra or {})}
    write_report_json(out / "report.json", report)
    write_selection_json(selection, out / "selection.json")
    counts = run_counts(shards)
    stored = store_results(out, run_id, in_deployment=deployment.id is not None)
    return {"results_dir": str(out), **{k: counts[k] for k in ("tests", "passed", "failed", "flaky", "skipped", "not_run")},
            "markdown": markdown, "head_commit": selection.head_commit, "notes": notes or [], "stored": stored}
