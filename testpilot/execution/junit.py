"""Parse JUnit XML into TestResult records, using junitparser.

Reads the shapes test runners write: pytest (xunit1 and xunit2, including collection errors, whose test
case has an empty classname and the module as its name), jest-junit, Maven Surefire/Failsafe and gotestsum.
A test case that cannot be read is kept as an error result rather than losing the whole file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import cast

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from testpilot.results import Outcome, TestResult

# A Python module part as pytest writes it into classname: "tests.test_a.TestX" -> tests/test_a.py.
_PY_MODULE_PART = re.compile(r"^(?:test_[\w-]*|[\w-]+_test|tests?|conftest)$")
_DOTTED = re.compile(r"^[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*$")


def _python_node_id(classname: str, name: str, file_attr: str) -> str:
    parts = [p for p in classname.split(".") if p]
    if file_attr and file_attr not in (".", ""):
        if not parts:  # a collection error (xunit1): the module is the test
            return PurePosixPath(file_attr).as_posix()
        module_parts = PurePosixPath(file_attr).with_suffix("").parts
        classes = parts[len(module_parts):]
        return "::".join([PurePosixPath(file_attr).as_posix(), *classes, name])
    if not parts:
        # pytest's collection error: classname "" and the module's dotted path as the name.
        if _DOTTED.match(name) and "." in name:
            return PurePosixPath(*name.split(".")).as_posix() + ".py"
        return name
    # Without a file attribute, the module path ends at the last part that looks like a test module.
    cut = max((i + 1 for i, p in enumerate(parts) if _PY_MODULE_PART.match(p)), default=len(parts))
    module = PurePosixPath(*parts[:cut]).as_posix() + ".py"
    return "::".join([module, *parts[cut:], name])


def _is_python(suite: TestSuite, case: TestCase) -> bool:
    file_attr = case._elem.get("file") or ""
    if file_attr.endswith(".py") or suite.name == "pytest":
        return True
    classname = case.classname or ""
    if not classname:
        return bool(_DOTTED.match(case.name or "")) and any(_PY_MODULE_PART.match(p) for p in
                                                            (case.name or "").split("."))
    return _DOTTED.match(classname) is not None and any(_PY_MODULE_PART.match(p) for p in classname.split("."))


def node_id_of(suite: TestSuite, case: TestCase) -> str:
    """pytest's node id for pytest files; ``<file, class or suite>::<name>`` for other runners."""
    classname, name = case.classname or "", case.name or ""
    if _is_python(suite, case):
        return _python_node_id(classname, name, case._elem.get("file") or "")
    owner = case._elem.get("file") or (suite.name if classname == name else classname) or suite.name or ""
    if owner and name.startswith(owner + " "):  # jest-junit repeats the describe blocks in the title
        name = name[len(owner) + 1:]
    return f"{owner}::{name}" if owner else name


def _result(suite: TestSuite, case: TestCase, *, app: str, shard: int, environment: str,
            host: str) -> TestResult:
    outcome: Outcome = "passed"
    message = traceback = error_type = ""
    for res in case.result:
        if isinstance(res, Failure):
            outcome = "failed"
        elif isinstance(res, Error):
            outcome = "error"
        elif isinstance(res, Skipped):
            outcome = "skipped"
        message = res.message or ""
        traceback = res.text or ""
        error_type = res.type or ""
    if outcome in ("failed", "error") and message in ("", "Failed") and traceback:
        message = _telling_line(traceback)  # jest-junit writes no message, gotestsum only "Failed"
    phase = "setup" if outcome == "error" and message.startswith("failed on setup") else "test"
    if outcome == "error" and message == "collection failure":
        phase = "collection"
    return TestResult(
        node_id=node_id_of(suite, case), app=app, outcome=outcome, duration=float(case.time or 0.0),
        message=message, traceback=traceback, stdout=case.system_out or "", stderr=case.system_err or "",
        shard=shard, environment=environment, host=host, phase=phase, error_type=error_type)


_GO_LINE = re.compile(r"^\s+\w+\.go:\d+: (.+)$|^(panic: .+?)(?: \[recovered\])?$", re.M)


def _telling_line(text: str) -> str:
    found = _GO_LINE.search(text)
    if found:
        return found.group(1) or found.group(2)
    return text.strip().split("\n", 1)[0]


def parse_junit(path: str | Path, *, app: str, shard: int = 0, environment: str = "",
                host: str = "") -> list[TestResult]:
    """Return one TestResult per test case in the file; an empty list if it does not exist."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    xml = JUnitXml.fromfile(str(path))
    suites = [cast(TestSuite, xml)] if xml._tag == "testsuite" else _suites(xml)
    results = []
    for suite in suites:
        for case in suite:
            if not isinstance(case, TestCase):
                continue
            try:
                results.append(_result(suite, case, app=app, shard=shard, environment=environment, host=host))
            except (ValueError, TypeError) as exc:  # one odd test case must not lose the file
                results.append(TestResult(node_id=f"{case.classname or ''}::{case.name or ''}", app=app,
                                          outcome="error", message=f"unreadable JUnit test case: {exc}",
                                          shard=shard, environment=environment, host=host))
    return results


def _suites(xml: JUnitXml) -> list[TestSuite]:
    """Test suites at any depth: Surefire aggregates and some runners nest suites in suites."""
    out: list[TestSuite] = []
    for suite in xml:
        out.append(suite)
        nested = [TestSuite.fromelem(e) for e in suite._elem if e.tag == "testsuite"]
        out.extend(nested)
    return out
