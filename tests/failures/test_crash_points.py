"""Clusters by cause: crash point, message template, failures meeting in one function, tests' own checks."""

from __future__ import annotations

from testpilot.failures.analysis import analyse_failures
from testpilot.failures.records import FailureRecord
from testpilot.failures.signature import called_by_test, signature_of

SEP = "_ " * 20


def crash(test: str, caller: str, func: str, exc: str, message: str, path: str = "shop/cart.py") -> FailureRecord:
    """A pytest long-format failure: test -> caller -> func, raising in func."""
    trace = (f"    def {test}():\n>       {caller}(1)\n\ntests/test_cart.py:9: \n{SEP}\n\n"
             f"    def {caller}(x):\n>       return {func}(x)\n\n{path}:20: in {caller}\n{SEP}\n\n"
             f"    def {func}(x):\n>       raise {exc}({message!r})\nE       {exc}: {message}\n\n{path}:30: {exc}")
    return FailureRecord(test_id=f"tests/test_cart.py::{test}", exception_type=exc, message=message,
                         traceback=trace)


def check(test: str, line: str, message: str) -> FailureRecord:
    trace = f"    def {test}():\n>       {line}\nE       {message}\n\ntests/test_cart.py:5: AssertionError"
    return FailureRecord(test_id=f"tests/test_cart.py::{test}", exception_type="AssertionError",
                         message=message, traceback=trace)


def clusters_of(records: list[FailureRecord]) -> dict[str, str]:
    return {v.test_id: v.cluster for v in analyse_failures(records).tests}


def test_data_in_messages_does_not_split_a_cause():
    records = [crash(f"test_{i}", "total", "price", "ValueError", f"Unknown string format: {text}")
               for i, text in enumerate(["2023-13-45", "tomorrow-ish", "'x'"])]
    assert len(set(clusters_of(records).values())) == 1


def test_failures_meeting_in_one_function_join_whatever_called_them():
    records = [crash("test_a", "total", "price", "TypeError", "'NoneType' object is not subscriptable"),
               crash("test_b", "discount", "price", "TypeError", "'NoneType' object is not subscriptable")]
    sig_a, sig_b = (signature_of(r) for r in records)
    assert sig_a.crash_point == sig_b.crash_point == "shop/cart.py:price"
    assert len(set(clusters_of(records).values())) == 1


def test_alike_messages_at_different_crash_points_stay_apart():
    records = [crash("test_a", "total", "price", "ValueError", "bad value 3"),
               crash("test_b", "ship", "weight", "ValueError", "bad value 4", path="shop/shipping.py")]
    assert len(set(clusters_of(records).values())) == 2
    analysis = analyse_failures(records)
    assert all("crash point shop/" in c.shared for c in analysis.clusters)


def test_a_tests_failed_check_joins_the_function_it_called():
    records = [crash("test_a", "total", "price", "TypeError", "unsupported operand"),
               check("test_b", "assert price(3) == 4", "assert 5 == 4"),
               check("test_c", "assert weight(3) == 1", "assert 0 == 1")]
    got = clusters_of(records)
    assert got["tests/test_cart.py::test_b"] == got["tests/test_cart.py::test_a"]
    # weight() crashed nowhere in this run: its failed check is a cluster of its own, not price's.
    assert got["tests/test_cart.py::test_c"] != got["tests/test_cart.py::test_a"]
    apart = next(c for c in analyse_failures(records).clusters if c.tests == ["tests/test_cart.py::test_c"])
    assert "test code calling weight" in apart.signature


def test_a_caller_shared_by_two_bugs_does_not_join_them():
    """Both crash under total() (the function every test calls); they crash in different functions,
    so they are two causes, and the tests' failed checks on each go to their own function's cluster."""
    records = [crash("test_a", "total", "price", "TypeError", "unsupported operand"),
               crash("test_b", "total", "weight", "KeyError", "'kg'", path="shop/shipping.py"),
               check("test_c", "assert price(3) == 4", "assert 5 == 4"),
               check("test_d", "assert weight(3) == 1", "assert 0 == 1")]
    got = clusters_of(records)
    ids = [got[f"tests/test_cart.py::test_{t}"] for t in "abcd"]
    assert ids[0] == ids[2] and ids[1] == ids[3] and ids[0] != ids[1]


def test_test_calls_reads_the_failing_line_or_the_value_it_used():
    assert called_by_test("    def test_x():\n>       assert v.bump_major().bump_minor() == w\nE  assert 1\n\n"
                      "tests/test_v.py:3: AssertionError") == ["bump_major"]
    assert called_by_test("    def test_x():\n        row = find_user(db, 7)\n>       assert len(row) == 2\nE  x\n\n"
                      "tests/test_v.py:4: AssertionError") == ["find_user"]
    assert called_by_test("    def test_x():\n>       assert str(x) == 'a'\nE  x\n\ntests/test_v.py:4: "
                      "AssertionError") == []
