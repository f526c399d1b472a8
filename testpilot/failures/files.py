"""Failure analysis of JUnit files: what ``testpilot analyse`` runs, with the pipeline's own analysis code.

Reads any number of JUnit files (pytest, jest-junit, Surefire, gotestsum...), the files of their automatic
re-runs and of earlier runs (history), and answers per failing test: category, defect type, cluster,
suggested cause and owner, plus the clusters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testpilot.errors import ConfigError
from testpilot.execution.junit import parse_junit
from testpilot.failures.analysis import analyse_failures
from testpilot.failures.config import FailuresConfig
from testpilot.failures.model import FailureAnalysis
from testpilot.failures.records import FailureRecord, record_from_result
from testpilot.failures.report import render_text, report_section
from testpilot.results import Outcome, TestResult

if TYPE_CHECKING:
    from testpilot.suite import Suite

CODEOWNERS_PLACES = ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS")


def read_results(paths: Sequence[str | Path], *, app: str = "") -> list[TestResult]:
    """Every test case of the given JUnit files; a missing or unreadable file is a ConfigError naming it."""
    results: list[TestResult] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such JUnit file", field="JUNIT", hint="pass the path of a JUnit XML report")
        try:
            results += parse_junit(p, app=app)
        except Exception as exc:  # junitparser/lxml raise several types for a file that is not JUnit XML
            raise ConfigError(f"{p}: not a JUnit XML file ({type(exc).__name__}: {exc})", field="JUNIT",
                              hint="pass the XML report your test runner wrote (pytest --junitxml, "
                                   "jest-junit, Surefire's TEST-*.xml, gotestsum --junitfile)") from None
    return results


def records_from_files(junit: Sequence[str | Path], reruns: Sequence[str | Path] = (),
                       history: Sequence[str | Path] = (), *, app: str = "",
                       ) -> tuple[list[FailureRecord], dict[str, list[Outcome]]]:
    """Failure records of ``junit`` with their re-run outcomes, and each test's outcomes in ``history``
    (files of earlier runs, oldest first)."""
    rerun_outcomes: dict[str, list[Outcome]] = {}
    for path in reruns:
        for r in read_results([path], app=app):
            rerun_outcomes.setdefault(r.node_id, []).append(r.outcome)
    past: dict[str, list[Outcome]] = {}
    for path in history:
        for r in read_results([path], app=app):
            past.setdefault(r.node_id, []).append(r.outcome)
    records = [record_from_result(r, rerun_outcomes.get(r.node_id, ())).model_copy(
        update={"history": past.get(r.node_id, [])}) for r in read_results(junit, app=app) if r.failed]
    return records, past


def read_codeowners(repo: Path) -> str:
    for place in CODEOWNERS_PLACES:
        if (repo / place).is_file():
            return (repo / place).read_text()
    return ""


def suite_ownership(suite: Suite, root: Path) -> dict[str, Any]:
    """``analyse_failures``'s ``codeowners`` and ``app_paths`` for a suite whose tree starts at ``root``:
    the apps' declared owners as CODEOWNERS lines, then the repository's own file (later lines win)."""
    inside = [app for app in suite.apps if suite.app_dir(app).is_relative_to(root)]
    lines = [f"/{suite.app_dir(app).relative_to(root).as_posix()}/ {' '.join(suite.apps[app].owners)}"
             for app in inside if suite.apps[app].owners]
    return {"codeowners": "\n".join([*lines, read_codeowners(root)]).strip("\n"),
            "app_paths": {app: suite.app_dir(app).relative_to(root).as_posix() for app in inside}}


def analyse_files(junit: Sequence[str | Path], *, reruns: Sequence[str | Path] = (),
                  history: Sequence[str | Path] = (), config: FailuresConfig | None = None,
                  changed_files: Sequence[str] = (), codeowners: str = "", app: str = "",
                  run_id: str = "") -> FailureAnalysis:
    """The pipeline's failure analysis over JUnit files."""
    records, past = records_from_files(junit, reruns, history, app=app)
    return analyse_failures(records, config or FailuresConfig(), run_id=run_id, changed_files=changed_files,
                            codeowners=codeowners or None, test_history=past or None)


def analysis_json(analysis: FailureAnalysis) -> dict[str, Any]:
    """Verdict per failing test, then the clusters (the report section), as plain JSON-able data."""
    section = report_section(analysis)
    return {"failures": analysis.failures, "by_category": section["by_category"],
            "tests": [v.model_dump() for v in analysis.tests], "clusters": section["clusters"]}


def analysis_text(analysis: FailureAnalysis) -> str:
    """One line per failing test (category, cluster, owner), then the clusters."""
    lines = [f"{len(analysis.tests)} failing tests"]
    for v in analysis.tests:
        owner = v.owner or "-"
        lines.append(f"  {v.category:<14} {v.defect_type:<8} cluster {v.cluster}  owner {owner}  {v.test_id}")
        lines.append(f"      {v.exception_type or 'failure'}: {v.message[:150]}  [{v.evidence[:100]}]")
    return "\n".join(lines) + "\n\n" + render_text(analysis)


def dump(analysis: FailureAnalysis, fmt: str) -> str:
    return json.dumps(analysis_json(analysis), indent=1) if fmt == "json" else analysis_text(analysis)
