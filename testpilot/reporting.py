"""Report builders: markdown, table rows, JUnit XML and report.json, from plain result data."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from testpilot.results import Selection, ShardResult, TestResult


def selection_markdown(selection: Selection, limit: int = 200) -> str:
    lines = [f"# Selection `{selection.base}...{selection.head}` ({selection.mode})", "",
             f"**{len(selection.selected)} selected**, {len(selection.skipped)} skipped, "
             f"{len(selection.unanalysable)} unanalysable change(s).", ""]
    if selection.changed_files:
        lines += ["Changed files: " + ", ".join(f"`{f}`" for f in selection.changed_files[:50]), ""]
    for title, tests in (("Selected", selection.selected), ("Skipped", selection.skipped),
                         ("Left out by budget", selection.left_out)):
        if not tests:
            continue
        lines += [f"## {title}", "", "| app | test | reason |", "|---|---|---|"]
        lines += [f"| {t.app} | `{t.test_id}` | {t.reason} |" for t in tests[:limit]]
        if len(tests) > limit:
            lines.append(f"| … | {len(tests) - limit} more | |")
        lines.append("")
    return "\n".join(lines)


def all_results(shards: list[ShardResult]) -> list[TestResult]:
    return [r for s in shards for r in s.results]


def result_rows(shards: list[ShardResult]) -> list[dict[str, Any]]:
    """One row per test, for the table artifact (also read back as duration and failure history)."""
    return [{"app": r.app, "node_id": r.node_id, "outcome": r.outcome, "duration": round(r.duration, 4),
             "shard": r.shard, "environment": r.environment, "host": r.host,
             "message": r.message.splitlines()[0][:200]
             if r.message else ""} for r in all_results(shards)]


def counts(results: list[TestResult]) -> Counter[str]:
    return Counter(r.outcome for r in results)


def summary_markdown(*, suite: str, selection: Selection, shards: list[ShardResult],
                     failures: list[dict[str, Any]], wall_seconds: float, graph_mermaid: str = "",
                     run_url: str = "") -> str:
    results = all_results(shards)
    c = counts(results)
    status = "FAILED" if c["failed"] + c["error"] else "PASSED"
    lines = [f"# Testpilot run: {status}", "",
             f"Suite `{suite}` · {len(results)} tests · {c['passed']} passed · {c['failed']} failed · "
             f"{c['error']} errors · {c['skipped']} skipped · wall {wall_seconds:.1f}s · "
             f"test time {sum(r.duration for r in results):.1f}s", ""]
    if run_url:
        lines += [f"[Flow run]({run_url})", ""]
    per_app: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, float] = defaultdict(float)
    for r in results:
        per_app[r.app][r.outcome] += 1
        durations[r.app] += r.duration
    lines += ["## By app", "", "| app | passed | failed | errors | skipped | seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {a} | {k['passed']} | {k['failed']} | {k['error']} | {k['skipped']} | {durations[a]:.2f} |"
              for a, k in sorted(per_app.items())]
    if failures:
        lines += ["", "## Failures by category and owner", "", "| test | category | defect type | owner | message |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{f['app']}::{f['node_id']}` | {f['category']} | {f['defect_type']} | {f['owner']} | "
                  f"{f['message'][:120]} |" for f in failures]
    if graph_mermaid:
        lines += ["", "## Graph", "", "```mermaid", graph_mermaid, "```"]
    lines += ["", selection_markdown(selection).replace("# Selection", "## Selection", 1)]
    return "\n".join(lines)


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
