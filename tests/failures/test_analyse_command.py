"""``testpilot analyse`` on JUnit files as pytest (xunit1, xunit2 with a collection error), jest-junit,
Maven Surefire and gotestsum write them (fixtures in tests/failures/junit, shapes copied from real runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main

JUNIT = Path(__file__).resolve().parent / "junit"
ROOT = Path(__file__).resolve().parents[2]


def analyse(capsys, *args: str) -> dict:
    assert main(["analyse", *args, "--format", "json", "--suite", "no-such-suite.yaml"]) == 0
    return json.loads(capsys.readouterr().out)


def by_test(answer: dict) -> dict[str, dict]:
    return {t["test_id"]: t for t in answer["tests"]}


def test_pytest_default_junit_with_a_collection_error_is_read(capsys):
    answer = analyse(capsys, str(JUNIT / "pytest-xunit2-collection-error.xml"))
    (test,) = answer["tests"]
    assert test["test_id"] == "tests/test_broken.py"
    assert (test["phase"], test["category"], test["defect_type"]) == ("collection", "dependency", "system")
    assert test["exception_type"] == "ModuleNotFoundError"
    assert test["cluster"] == answer["clusters"][0]["id"]


@pytest.mark.parametrize("name", ["pytest-xunit1.xml", "pytest-xunit2.xml"])
def test_pytest_xunit1_and_xunit2_give_the_same_answer(capsys, name):
    tests = by_test(analyse(capsys, str(JUNIT / name)))
    assert set(tests) == {"tests/test_broken.py", "tests/test_a.py::TestX::test_m", "tests/test_a.py::test_fix"}
    assert tests["tests/test_a.py::TestX::test_m"]["category"] == "product_bug"
    assert tests["tests/test_a.py::TestX::test_m"]["exception_type"] == "AssertionError"  # pytest names none
    assert tests["tests/test_a.py::test_fix"]["phase"] == "setup"
    assert tests["tests/test_a.py::test_fix"]["category"] == "test_bug"


def test_jest_failures_meeting_in_one_function_share_a_cluster(capsys):
    answer = analyse(capsys, str(JUNIT / "jest-junit.xml"))
    tests = by_test(answer)
    assert set(tests) == {"cart::total adds prices", "cart::total skips missing items",
                          "cart::discount applies to gifts"}
    a, b = tests["cart::total skips missing items"], tests["cart::discount applies to gifts"]
    assert a["cluster"] == b["cluster"]  # different callers (total, discount), one faulty function: price
    assert a["category"] == "product_bug"
    cluster = next(c for c in answer["clusters"] if c["id"] == a["cluster"])
    assert cluster["crash_point"] == "src/cart.js:price"
    assert "crash point src/cart.js:price" in cluster["shared"]
    expect = tests["cart::total adds prices"]
    assert (expect["exception_type"], expect["category"]) == ("AssertionError", "product_bug")
    assert expect["cluster"] != a["cluster"]


def test_surefire_exception_types_and_crash_points(capsys):
    tests = by_test(analyse(capsys, str(JUNIT / "surefire-TEST-com.acme.shop.CartTest.xml")))
    npe = [tests["com.acme.shop.CartTest::emptyCartIsZero"], tests["com.acme.shop.CartTest::giftHasNoPrice"]]
    assert {t["exception_type"] for t in npe} == {"java.lang.NullPointerException"}
    assert npe[0]["cluster"] == npe[1]["cluster"]  # Cart.total, called directly and through withGift
    assert all(t["category"] == "product_bug" and "shop/Cart.java" in t["evidence"] for t in npe)
    failed = tests["com.acme.shop.CartTest::totalAddsPrices"]
    assert (failed["exception_type"], failed["category"]) == ("org.opentest4j.AssertionFailedError", "product_bug")


def test_go_junit_from_gotestsum(capsys):
    tests = by_test(analyse(capsys, str(JUNIT / "gotestsum.xml")))
    assert tests["github.com/acme/shop/cart::TestTotal"]["message"] == "total = 29, want 30"
    assert tests["github.com/acme/shop/cart::TestTotal"]["category"] == "product_bug"
    panic = tests["github.com/acme/shop/cart::TestEmpty"]
    assert panic["category"] == "product_bug" and "cart/cart.go" in panic["evidence"]


RERUN = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1">
<testcase classname="tests.test_a.TestX" name="test_m" time="0.1"/></testsuite></testsuites>"""


def test_a_failure_that_passes_on_its_rerun_is_flaky_and_output_is_written(capsys, tmp_path):
    rerun = tmp_path / "rerun.xml"
    rerun.write_text(RERUN)
    out = tmp_path / "answer.json"
    assert main(["analyse", str(JUNIT / "pytest-xunit2.xml"), "--rerun", str(rerun), "--output", str(out),
                 "--suite", "no-such-suite.yaml"]) == 0
    assert "flaky" in capsys.readouterr().out
    tests = by_test(json.loads(out.read_text()))
    assert tests["tests/test_a.py::TestX::test_m"]["category"] == "flaky"
    assert tests["tests/test_a.py::test_fix"]["category"] == "test_bug"  # each test keeps its own category


def test_a_test_that_keeps_flipping_in_its_history_is_flaky(capsys, tmp_path):
    passing, failing = tmp_path / "pass.xml", JUNIT / "pytest-xunit2.xml"
    passing.write_text(RERUN)
    answer = analyse(capsys, str(failing), "--history", str(failing), str(passing), str(failing), str(passing))
    test = by_test(answer)["tests/test_a.py::TestX::test_m"]
    assert test["category"] == "flaky" and "flipped" in test["evidence"]
    steady = analyse(capsys, str(failing), "--history", str(passing), str(passing), str(passing))
    assert by_test(steady)["tests/test_a.py::TestX::test_m"]["category"] == "product_bug"


def test_a_missing_file_is_one_clear_error(capsys, tmp_path):
    assert main(["analyse", str(tmp_path / "nope.xml"), "--suite", "no-such-suite.yaml"]) == 2
    err = capsys.readouterr().err
    assert "nope.xml: no such JUnit file" in err and "Traceback" not in err
    bad = tmp_path / "bad.xml"
    bad.write_text("not xml at all")
    assert main(["analyse", str(bad), "--suite", "no-such-suite.yaml"]) == 2
    assert "not a JUnit XML file" in capsys.readouterr().err


def test_the_command_loads_neither_prefect_nor_sqlalchemy_nor_faker():
    code = ("import sys\nfrom flows.cli import main\n"
            f"assert main(['analyse', {str(JUNIT / 'jest-junit.xml')!r}, '--format', 'json']) == 0\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'sqlalchemy', 'faker'})\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
