"""Parse JUnit XML (as pytest writes it) into TestResult records, using junitparser."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase

from testpilot.results import Outcome, TestResult


def _node_id(case: TestCase) -> str:
    """Rebuild pytest's node id from classname ('tests.test_a.TestX') and name."""
    classname, name = case.classname or "", case.name or ""
    file_attr = case._elem.get("file")
    parts = classname.split(".")
    if file_attr:
        module_parts = Path(file_attr).with_suffix("").parts
        classes = parts[len(module_parts):]
        return "::".join([Path(file_attr).as_posix(), *classes, name])
    # Without a file attribute, assume the longest dotted prefix is the module path.
    for cut in range(len(parts), 0, -1):
        candidate = Path(*parts[:cut]).with_suffix(".py")
        if candidate.name.startswith("test") or cut == len(parts):
            return "::".join([candidate.as_posix(), *parts[cut:], name])
    return name


def parse_junit(path: str | Path, *, app: str, shard: int = 0, environment: str = "",
                host: str = "") -> list[TestResult]:
    """Return one TestResult per test case in the file; an empty list if it does not exist."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    xml = JUnitXml.fromfile(str(path))
    suites = [xml] if xml._tag == "testsuite" else list(xml)
    results = []
    for suite in suites:
        for case in suite:
            if not isinstance(case, TestCase):
                continue
            outcome: Outcome = "passed"
            message = traceback = ""
            for res in case.result:
                if isinstance(res, Failure):
                    outcome = "failed"
                elif isinstance(res, Error):
                    outcome = "error"
                elif isinstance(res, Skipped):
                    outcome = "skipped"
                message = res.message or ""
                traceback = res.text or ""
            results.append(TestResult(
                node_id=_node_id(case), app=app, outcome=outcome, duration=float(case.time or 0.0),
                message=message, traceback=traceback, stdout=case.system_out or "",
                stderr=case.system_err or "", shard=shard, environment=environment, host=host,
                phase="setup" if outcome == "error" and "during setup" in message else "test"))
    return results
