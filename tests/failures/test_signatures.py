from __future__ import annotations

import pytest

from testpilot.failures.frames import final_exception_type, parse_frames, split_exception
from testpilot.failures.records import FailureRecord
from testpilot.failures.signature import key_frames, normalise_message, signature_of

LONG = """def test_total():
>       assert pricing.total([1.0]) == 2.0

tests/test_pricing.py:7:{SP}
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _{SP}

prices = [1.0]

    def total(prices):
>       return prices[0] / 0
E       ZeroDivisionError: float division by zero

shop/pricing.py:3: ZeroDivisionError""".replace("{SP}", " ")  # pytest ends these lines with a space

NATIVE = """Traceback (most recent call last):
  File "/srv/app/shop/pricing.py", line 12, in total
    return a / b
  File "/usr/lib/python3.11/site-packages/lib.py", line 3, in helper
    raise ValueError("x")
ValueError: bad value 42"""


@pytest.mark.parametrize("raw,expected", [
    ("Connection refused to 127.0.0.1:5432", "Connection refused to <ip>"),
    ("object at 0x7f71a997e650 failed", "object at <hex> failed"),
    ("run 123e4567-e89b-12d3-a456-426614174000 lost", "run <uuid> lost"),
    ("at 2026-11-21T20:55:01.664993+00:00 and 12:01:02", "at <ts> and <ts>"),
    ("No such file: '/tmp/pytest-of-ci/pytest-7/test_a0/data.csv'", "No such file: <q>"),
    ("No such file: /srv/app/data/orders.csv", "No such file: <path>"),
    ("connection to server at \"db\", port 5439 failed", "connection to server at <q>, port <port> failed"),
    ("HTTPConnectionPool(host='localhost', port=38211)", "HTTPConnectionPool(host=<q>, port=<port>)"),
    ("'NoneType' object has no attribute 'price'", "<q> object has no attribute <q>"),
    ("Unknown string format: 2023-13-45 foo", "Unknown string format: <data>"),
    ("1.2.3-rc.1 is not valid SemVer string", "<n> is not valid SemVer string"),
    ("Lists differ: [1, [2, 3]] != [1, 3]", "Lists differ: […] != […]"),
    ("DID NOT RAISE <class 'ValueError'>", "DID NOT RAISE <repr>"),
    ("assert len(x) == 3\n +  where 2 = len([1, 2])", "assert len(x) == <n>"),
    ("can't connect to 'db'", "can't connect to <q>"),
    ("assert 41.5 == 42\n +  where 41.5 = total([1])", "assert <n> == <n> (where total)"),
    ("commit deadbeef12 broke it", "commit <hex> broke it"),
    ("first line\nsecond line with 99", "first line"),
])
def test_normalise_removes_volatile_parts(raw, expected):
    assert normalise_message(raw) == expected


def test_same_cause_with_other_volatile_details_has_one_key():
    a = FailureRecord(test_id="t::a", exception_type="OperationalError", traceback=LONG,
                      message='connection to server at "127.0.0.1", port 5432 failed at 0x7f00aa11bb22')
    b = a.model_copy(update={"test_id": "t::b",
                             "message": 'connection to server at "10.1.2.3", port 6543 failed at 0x7f00cc99dd00'})
    assert signature_of(a).key == signature_of(b).key
    c = a.model_copy(update={"message": "password authentication failed for user app"})
    assert signature_of(a).key != signature_of(c).key


def test_parse_pytest_long_format_frames():
    frames = parse_frames(LONG)
    assert [(f.path, f.line, f.function) for f in frames] == [
        ("tests/test_pricing.py", 7, "test_total"), ("shop/pricing.py", 3, "total")]
    assert frames[0].is_test and not frames[1].is_test
    assert final_exception_type(LONG) == "ZeroDivisionError"


def test_parse_native_frames_and_library_detection():
    frames = parse_frames(NATIVE)
    assert [(f.short_path, f.line, f.function) for f in frames] == [
        ("shop/pricing.py", 12, "total"), ("site-packages/lib.py", 3, "helper")]
    assert frames[1].is_library and not frames[0].is_library
    assert final_exception_type(NATIVE) == "ValueError"


def test_key_frames_skip_the_test_function_but_keep_project_code():
    assert key_frames(parse_frames(LONG)) == ["shop/pricing.py:total"]
    only_test = parse_frames("tests/test_a.py:3: AssertionError")
    assert key_frames(only_test) == ["test code"]
    assert key_frames(only_test, test_file=False) == []


def test_split_exception():
    assert split_exception("requests.exceptions.ConnectionError: boom") == ("requests.exceptions.ConnectionError",
                                                                            "boom")
    assert split_exception("socket.gaierror: [Errno -2] x") == ("socket.gaierror", "[Errno -2] x")
    assert split_exception("assert 1 == 2") == ("", "assert 1 == 2")
