from __future__ import annotations

import pytest

from testpilot.errors import ConfigError
from testpilot.failures.categories import BUILTIN_DEFECT_TYPES, Categoriser
from testpilot.failures.config import CategoryRule, FailuresConfig
from testpilot.failures.records import FailureRecord
from testpilot.suite import _BUILTIN_CATEGORY_NAMES

PROJECT_TRACE = "tests/test_a.py:5: \n_ _ _ _ _ _ _ _ _ _ _ _\n\n    def f():\n>       boom()\nE   X\n\nshop/core.py:9: Err"
TEST_TRACE = "def test_a():\n>       x = y\nE       Err\n\ntests/test_a.py:5: Err"


def rec(exc: str = "", message: str = "", trace: str = "", phase: str = "test", **kw) -> FailureRecord:
    return FailureRecord(test_id="tests/test_a.py::test_a", exception_type=exc, message=message,
                         traceback=trace, phase=phase, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("record,category", [
    (rec("AssertionError", "assert 1 == 2", TEST_TRACE), "product_bug"),
    (rec("KeyError", "'x'", PROJECT_TRACE), "product_bug"),
    (rec("TypeError", "unsupported operand", TEST_TRACE), "test_bug"),
    (rec("RuntimeError", "fixture broke", TEST_TRACE, phase="setup"), "test_bug"),
    (rec("ConnectionRefusedError", "[Errno 111] Connection refused"), "environment"),
    (rec("socket.gaierror", "[Errno -2] Name or service not known"), "environment"),
    (rec("paramiko.ssh_exception.SSHException", "Error reading SSH protocol banner"), "environment"),
    (rec("MemoryError", ""), "environment"),
    (rec("OSError", "[Errno 28] No space left on device"), "environment"),
    (rec("ProvisioningError", "could not create VM", phase="provision"), "environment"),
    (rec("TimeoutError", "timed out"), "timeout"),
    (rec("Failed", "Timeout >0.5s"), "timeout"),
    (rec("sqlite3.IntegrityError", "UNIQUE constraint failed: users.email"), "test_data"),
    (rec("ValueError", "row 3 is bad", phase="seed"), "test_data"),
    (rec("ModuleNotFoundError", "No module named 'x'"), "dependency"),
    (rec("ImportError", "shop requires pydantic<2 but 2.7 is installed"), "dependency"),
    (rec("requests.exceptions.HTTPError", "401 Client Error: Unauthorized for url"), "authentication"),
    (rec("RuntimeError", "HTTP 403 from the registry"), "authentication"),
    # the milliseconds of a timestamp are not an HTTP status (this made a kernel-panic abort "authentication")
    (rec("StreamAbort", "Kernel panic: T=1796224587.401 not syncing", phase="test"), "environment"),
    (rec("psycopg.OperationalError", 'connection failed: FATAL: password authentication failed for user "a"'),
     "authentication"),
    (rec("AssertionError", "assert 1 == 2", TEST_TRACE, rerun_outcomes=["failed", "passed"]), "flaky"),
    (rec("RuntimeError", "strange", "/usr/lib/python3.11/site-packages/x.py:3: RuntimeError"), "unclassified"),
])
def test_builtin_categories(record, category):
    got = Categoriser().categorise(record)
    assert got.category == category, got
    assert got.defect_type == BUILTIN_DEFECT_TYPES[category]


def test_builtin_names_are_known_to_the_suite_model():
    assert set(BUILTIN_DEFECT_TYPES) <= _BUILTIN_CATEGORY_NAMES


def test_configured_rules_apply_in_order_before_builtins():
    config = FailuresConfig(categories=[
        CategoryRule(name="payments_down", patterns=[r"payments\.internal"], hint="page the payments on-call"),
        CategoryRule(name="any_refusal", patterns=["refused"], defect_type="system"),
        CategoryRule(name="integrity", exception_types=["IntegrityError"], defect_type="product"),
    ])
    c = Categoriser(config)
    first = c.categorise(rec("ConnectionRefusedError", "refused by payments.internal:443"))
    assert (first.category, first.rule, first.defect_type) == ("payments_down", "config:payments_down", "system")
    assert c.hint("payments_down") == "page the payments on-call"
    assert c.categorise(rec("ConnectionRefusedError", "Connection refused")).category == "any_refusal"
    typed = c.categorise(rec("sqlalchemy.exc.IntegrityError", "duplicate"))
    assert (typed.category, typed.defect_type) == ("integrity", "product")
    assert c.categorise(rec("MemoryError")).category == "environment"


def test_configured_pattern_searches_output_too():
    config = FailuresConfig(categories=[CategoryRule(name="oom_killer", patterns=["Killed process \\d+"])])
    got = Categoriser(config).categorise(rec("AssertionError", "assert 0", output="kernel: Killed process 4242"))
    assert got.category == "oom_killer"


def test_invalid_regex_names_the_field():
    with pytest.raises(ConfigError) as err:
        Categoriser(FailuresConfig(categories=[CategoryRule(name="x", patterns=["(unclosed"])]))
    assert "failures.categories.0.patterns" in str(err.value)


def test_hints_configurable_per_category():
    c = Categoriser(FailuresConfig(hints={"environment": "ask #infra"}))
    assert c.hint("environment") == "ask #infra"
    assert c.hint("timeout")


@pytest.mark.parametrize("pattern,text", [
    (r"Invalid token", "ERROR: INVALID TOKEN given"),
    (r"\S+Error: (?P<Who>\w+) [A-Z]{2}\d", "x ValidationError: field AB1"),
    (r"(?P<code>4\d\d) Client Error", "401 client error"),
])
def test_configured_patterns_match_case_insensitively(pattern, text):
    config = FailuresConfig(categories=[CategoryRule(name="mine", patterns=[pattern])])
    assert Categoriser(config).categorise(rec("X", text)).category == "mine"
    assert Categoriser(config).categorise(rec("X", "nothing to see")).category != "mine"
