"""A run's verdict as CI needs it: one exit code and a few facts, the same for every way a run ends.

The pipeline publishes it (a one-row table artifact) whether it passed, found failures, or stopped on
a configuration or infrastructure error; ``testpilot ci`` reads it back through the Prefect API, so the
exit codes 0/1/2/3 survive the trip through a deployment and a worker on another machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testpilot.errors import ConfigError, TestpilotError

VERDICTS = {0: "passed", 1: "tests failed", 2: "configuration error", 3: "infrastructure error"}
RESULT_FILES = {"junit": "junit.xml", "report": "report.json"}


def exit_code_of(error: BaseException | None) -> int:
    """0 without an error; a Testpilot error's own code; 3 for anything else (a crash is not the change's fault)."""
    if error is None:
        return 0
    return error.exit_code if isinstance(error, TestpilotError) else 3


def verdict_row(exit_code: int, message: str = "", summary: dict[str, Any] | None = None,
                stored: dict[str, str] | None = None) -> dict[str, Any]:
    """The verdict as one flat table row (table artifacts show flat rows well in the UI)."""
    summary = summary or {}
    stored = stored or {}
    return {"exit_code": exit_code, "verdict": VERDICTS.get(exit_code, "error"), "message": message[:2000],
            "tests": int(summary.get("tests", 0)), "failed": int(summary.get("failed", 0)),
            "flaky": int(summary.get("flaky", 0)), "storage": stored.get("storage", ""),
            **{name: stored.get(name, "") for name in RESULT_FILES}}


def final_exit(state_name: str, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """The exit code for CI from the run's final state and its verdict rows (newest first)."""
    if rows:
        row = rows[0]
        return int(row.get("exit_code", 3)), str(row.get("message") or row.get("verdict") or "")
    if state_name == "Completed":
        return 0, "the run completed but published no verdict (a pipeline older than `testpilot ci`?)"
    return 3, f"the run ended {state_name or 'without a state'} and published no verdict"


def parse_parameters(items: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON unless the deployment declares the parameter a string
    (so ``-p base=1234`` stays the ref "1234"). Unknown keys are an error naming them."""
    properties = schema.get("properties", {})
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-p {item!r}: expected key=value", field="-p")
        if properties and key not in properties:
            raise ConfigError(f"the deployment has no parameter {key!r}", field=f"-p {key}",
                              hint=f"its parameters: {', '.join(sorted(properties))}")
        if properties.get(key, {}).get("type") == "string":
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def failing_tests(report: dict[str, Any]) -> list[dict[str, str]]:
    """Failing tests with their owners from report.json; results without an analysis row are 'unowned'."""
    analysed = {(f.get("app", ""), f.get("node_id", "")): f for f in report.get("failures", [])}
    failing = []
    for row in report.get("results", []):
        if row.get("outcome") not in ("failed", "error"):
            continue
        key = (row.get("app", ""), row.get("node_id", ""))
        seen = analysed.pop(key, {})
        failing.append({"app": key[0], "test": key[1], "owner": seen.get("owner") or "unowned",
                        "category": seen.get("category", ""), "message": seen.get("message", "")})
    failing += [{"app": f.get("app", ""), "test": f.get("node_id", ""), "owner": f.get("owner") or "unowned",
                 "category": f.get("category", ""), "message": f.get("message", "")} for f in analysed.values()]
    return failing


def write_error_junit(path: Path, run_name: str, exit_code: int, message: str) -> None:
    """A junit.xml with one errored case saying why no test ran, so CI test reporters show the reason."""
    from junitparser import Error, JUnitXml, TestCase, TestSuite

    case = TestCase("testpilot", classname=f"testpilot.{run_name or 'run'}")
    case.result = [Error(message[:1000], VERDICTS.get(exit_code, "error"))]
    suite = TestSuite("testpilot")
    suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml(name="testpilot")
    xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
