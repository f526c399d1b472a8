"""The verdict CI reads back from a run: exit codes, failing tests with owners, the error junit.xml."""

import pytest
from junitparser import Error, JUnitXml

from testpilot.errors import ConfigError, GitError, LockTimeout, ProvisioningError, TestsFailed
from testpilot.verdict import (
    exit_code_of,
    failing_tests,
    final_exit,
    parse_parameters,
    verdict_row,
    write_error_junit,
)


@pytest.mark.parametrize(("error", "code"), [
    (None, 0), (TestsFailed(1, 3), 1), (ConfigError("bad"), 2), (GitError("unknown git ref 'x'"), 2),
    (ProvisioningError("refused", host="127.0.0.1"), 3), (LockTimeout("busy", pool="p", holders=[], timeout=1), 3),
    (ValueError("a bug"), 3), (KeyboardInterrupt(), 3)])
def test_exit_code_of_each_way_a_run_ends(error, code):
    assert exit_code_of(error) == code


def test_verdict_row_is_flat_and_names_the_stored_files():
    row = verdict_row(1, "1 of 3 test(s) failed", {"tests": 3, "failed": 1, "flaky": 0, "results_dir": "/x"},
                      {"storage": "local-file-system/r", "junit": "id/junit.xml", "report": "id/report.json"})
    assert row == {"exit_code": 1, "verdict": "tests failed", "message": "1 of 3 test(s) failed", "tests": 3,
                   "failed": 1, "flaky": 0, "storage": "local-file-system/r", "junit": "id/junit.xml",
                   "report": "id/report.json"}
    assert all(isinstance(v, str | int) for v in verdict_row(3, "x" * 5000).values())
    assert len(verdict_row(3, "x" * 5000)["message"]) == 2000


def test_final_exit_prefers_the_verdict_then_the_state():
    assert final_exit("Failed", [{"exit_code": 2, "message": "unknown git ref"}]) == (2, "unknown git ref")
    assert final_exit("Completed", [])[0] == 0
    code, message = final_exit("Crashed", [])
    assert code == 3 and "Crashed" in message
    assert final_exit("Cancelled", [])[0] == 3


def test_failing_tests_carry_owners_and_unanalysed_failures_are_unowned():
    report = {"results": [{"app": "a", "node_id": "t.py::ok", "outcome": "passed"},
                          {"app": "a", "node_id": "t.py::bad", "outcome": "failed"},
                          {"app": "b", "node_id": "u.py::err", "outcome": "error"}],
              "failures": [{"app": "a", "node_id": "t.py::bad", "owner": "team-a", "category": "assertion",
                            "message": "assert 1 == 2"}]}
    assert failing_tests(report) == [
        {"app": "a", "test": "t.py::bad", "owner": "team-a", "category": "assertion", "message": "assert 1 == 2"},
        {"app": "b", "test": "u.py::err", "owner": "unowned", "category": "", "message": ""}]
    assert failing_tests({}) == []


def test_error_junit_says_why_no_test_ran(tmp_path):
    path = tmp_path / "out" / "junit.xml"
    write_error_junit(path, "odd-run", 3, "cannot reach 127.0.0.1:2222: connection refused")
    [suite] = list(JUnitXml.fromfile(str(path)))
    [case] = list(suite)
    assert suite.errors == 1 and case.classname == "testpilot.odd-run"
    [error] = case.result
    assert isinstance(error, Error) and "connection refused" in error.message and error.type == "infrastructure error"


SCHEMA = {"properties": {"base": {"type": "string"}, "full": {"type": "boolean"},
                         "max_parallel": {"type": "integer"}, "results_dir": {"anyOf": [{"type": "string"},
                                                                                        {"type": "null"}]}}}


def test_parameters_are_json_unless_declared_strings():
    assert parse_parameters(["base=1234", "full=true", "max_parallel=2", "results_dir=/tmp/r"], SCHEMA) == {
        "base": "1234", "full": True, "max_parallel": 2, "results_dir": "/tmp/r"}
    assert parse_parameters(["base=a=b"], SCHEMA) == {"base": "a=b"}


@pytest.mark.parametrize(("item", "expected"), [("suit=x", "no parameter 'suit'"), ("base", "expected key=value"),
                                                ("=x", "expected key=value")])
def test_bad_parameters_are_config_errors_naming_them(item, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        parse_parameters([item], SCHEMA)
    assert info.value.exit_code == 2


def test_the_error_counts_tests_as_the_summary_does_and_scenarios_apart():
    from testpilot.execution.outcome import run_verdict

    assert str(TestsFailed(1, 23, scenarios=(0, 1))).startswith("1 of 23 test(s) failed")
    both = TestsFailed(1, 23, scenarios=(1, 2))
    assert str(both).startswith("1 of 23 test(s) failed, 1 of 2 scenario(s) failed") and both.failed == 2
    only_scenario = run_verdict([], failed=0, total=23, results_dir="", scenarios=(1, 1))
    assert isinstance(only_scenario, TestsFailed) and str(only_scenario).startswith("1 of 1 scenario(s) failed")
    assert run_verdict([], failed=0, total=23, results_dir="", scenarios=(0, 1)) is None
