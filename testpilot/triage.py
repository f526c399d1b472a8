"""Triage decisions that stick: a person re-categorises a failure cluster, or marks it known or flaky,
and later runs apply that to the same cluster (same id, or same signature).

Decisions are plain dicts keyed by cluster id; the Prefect side keeps them in a Variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from testpilot.errors import ConfigError

Status = Literal["open", "known", "flaky"]


class Decision(BaseModel):
    cluster: str = Field(description="The cluster id shown in the summary (or its signature).")
    category: str = Field("", description="The category to use instead of the computed one ('' keeps it).")
    defect_type: str = Field("", description="The defect type to use instead ('' keeps it).")
    status: Status = Field("open", description="known: a tracked issue; flaky: an unreliable test; open: neither.")
    note: str = Field("", description="Why, e.g. an issue link.")
    by: str = ""
    at: str = ""
    signature: str = ""


def record(decisions: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The decisions with ``decision`` added (replacing any earlier one for the same cluster)."""
    if not decision.cluster.strip():
        raise ConfigError("a triage decision needs a cluster id", field="cluster",
                          hint="copy the id from the run summary's Failures table")
    if not (decision.category or decision.defect_type or decision.status != "open" or decision.note):
        raise ConfigError("a triage decision must change something", field="category",
                          hint="pass --category, --defect-type, --status known|flaky or --note")
    stamped = decision.model_copy(update={"at": decision.at or datetime.now(UTC).isoformat(timespec="seconds")})
    return {**decisions, decision.cluster: stamped.model_dump()}


def find(decisions: Mapping[str, Any], cluster: Mapping[str, Any]) -> Decision | None:
    """The decision for a cluster: by id, else by signature."""
    raw: Mapping[str, Any] | None = decisions.get(str(cluster.get("id", "")))
    if raw is None:
        sig = cluster.get("signature")
        raw = next((d for d in decisions.values() if sig and sig in (d.get("signature"), d.get("cluster"))), None)
    return Decision.model_validate(raw) if raw else None


def label(d: Decision) -> str:
    parts: list[str] = [d.status] if d.status != "open" else []
    if d.note:
        parts.append(d.note)
    return ", ".join(parts) or "re-categorised"


def apply(decisions: Mapping[str, Any], clusters: list[dict[str, Any]], per_test: list[dict[str, Any]]
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Clusters and per-test failures with the decisions applied; each changed one gets a ``triage`` note
    and keeps the computed category as ``computed_category``."""
    new_clusters, by_id = [], {}
    for c in clusters:
        d = find(decisions, c)
        if d:
            c = {**c, "computed_category": c.get("category"), "category": d.category or c.get("category"),
                 "defect_type": d.defect_type or c.get("defect_type"), "triage": label(d), "triage_status": d.status}
        new_clusters.append(c)
        by_id[str(c.get("id"))] = c
    new_tests = []
    for f in per_test:
        hit = by_id.get(str(f.get("cluster")))
        if hit and hit.get("triage"):
            f = {**f, "category": hit["category"], "defect_type": hit["defect_type"], "triage": hit["triage"]}
        new_tests.append(f)
    return new_clusters, new_tests
