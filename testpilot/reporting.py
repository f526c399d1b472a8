"""Report builders: table rows, JUnit XML and report.json, from plain result data (the summary: run_report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from testpilot.results import ShardResult, TestResult


def all_results(shards: list[ShardResult]) -> list[TestResult]:
    return [r for s in shards for r in s.results]


def result_rows(shards: list[ShardResult]) -> list[dict[str, Any]]:
    """One row per test, for the table artifact (also read back as duration and failure history)."""
    return [{"app": r.app, "node_id": r.node_id, "outcome": r.outcome, "duration": round(r.duration, 4),
             "shard": r.shard, "environment": r.environment, "host": r.host,
             "message": r.message.splitlines()[0][:200]
             if r.message else ""} for r in all_results(shards)]


def write_junit(path: Path, shards: list[ShardResult]) -> None:
    xml = JUnitXml(name="testpilot")
    by_app: dict[str, TestSuite] = {}
    for r in all_results(shards):
        suite = by_app.setdefault(r.app, TestSuite(r.app))
        file_part, _, name = r.node_id.rpartition("::")
        case = TestCase(name or r.node_id, classname=f"{r.app}.{file_part or r.node_id}", time=r.duration)
        if r.outcome == "failed":
            case.result = [Failure(r.message[:1000])]
        elif r.outcome == "error":
            case.result = [Error(r.message[:1000])]
        elif r.outcome == "skipped":
            case.result = [Skipped(r.message[:1000])]
        if r.traceback and case.result:
            case.result[0].text = r.traceback
        if r.stdout:
            case.system_out = r.stdout
        suite.add_testcase(case)
    for suite in by_app.values():
        suite.update_statistics()
        xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)


def write_report_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
