"""Interim failure analysis: pattern categories and routing. Replaced by the full engine (issue 6)."""

from __future__ import annotations

import re

from pydantic import BaseModel

from testpilot.failures.config import FailuresConfig
from testpilot.results import TestResult


class AnalysedFailure(BaseModel):
    node_id: str
    app: str
    category: str
    defect_type: str
    owner: str
    message: str


def analyse(results: list[TestResult], config: FailuresConfig, owners: dict[str, list[str]]) -> list[AnalysedFailure]:
    out = []
    for r in (r for r in results if r.failed):
        text = "\n".join((r.message, r.traceback, r.stdout))
        category, defect = "unclassified", "product"
        for rule in config.categories:
            if any(re.search(p, text) for p in rule.patterns):
                category, defect = rule.name, rule.defect_type
                break
        else:
            if "AssertionError" in text or r.message.startswith("assert"):
                category = "product_bug"
        owner = config.routing.get(category) or ", ".join(owners.get(r.app, [])) or "unowned"
        out.append(AnalysedFailure(node_id=r.node_id, app=r.app, category=category, defect_type=defect,
                                   owner=owner, message=r.message.splitlines()[0] if r.message else ""))
    return out
