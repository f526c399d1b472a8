"""Triage decisions kept in Prefect: the newest version of the ``testpilot-triage-<suite>`` table artifact
holds every decision (one row per cluster); each change adds a version, so the UI shows who changed
what, when. A Variable would be simpler but holds at most 5,000 characters.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from tasks.common import TASK_DEFAULTS
from tasks.reports import artifact_key, latest_table
from testpilot.triage import Decision, apply, record


def triage_key(suite_name: str) -> str:
    return artifact_key("testpilot-triage", suite_name)


def load_decisions(suite_name: str) -> dict[str, Any]:
    return {str(row["cluster"]): row for row in latest_table(triage_key(suite_name)) if row.get("cluster")}


def save_decision(suite_name: str, decision: Decision) -> dict[str, Any]:
    """Add (or replace) one cluster's decision; returns every decision now in force."""
    decisions = record(load_decisions(suite_name), decision)
    create_table_artifact(list(decisions.values()), key=triage_key(suite_name),
                          description=f"Triage decisions for suite {suite_name}: later runs apply them")
    return decisions


@task(name="apply-triage", **TASK_DEFAULTS)
def apply_triage(suite_name: str, analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis with stored triage decisions applied to its clusters and failing tests."""
    decisions = load_decisions(suite_name)
    if not decisions:
        return analysis
    clusters, per_test = apply(decisions, list(analysis["section"].get("clusters", [])), analysis["per_test"])
    return {**analysis, "section": {**analysis["section"], "clusters": clusters}, "per_test": per_test}
