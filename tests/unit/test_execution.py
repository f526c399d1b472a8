import sys
import time

import pytest

from testpilot.errors import ConfigError
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.local import run_local
from testpilot.execution.outcome import shard_result
from testpilot.execution.shards import split_shards


def test_test_ids_stay_single_arguments():
    hostile = "tests/t.py::test_x[$(touch /tmp/pwned); rm -rf ~]"
    argv = build_argv("pytest -q {tests}", tests=[hostile, "b c.py"], junit="/r/j.xml")
    assert argv[-2:] == [hostile, "b c.py"]
    assert "--junitxml=/r/j.xml" in argv and argv[0] == "pytest"


def test_command_templates():
    assert build_argv("make test OUT={junit}", tests=[], junit="/j.xml") == ["make", "test", "OUT=/j.xml"]
    argv = build_argv("python -m pytest {tests}", tests=["a"], junit="/j", plugins=("testpilot_pytest",))
    assert argv[:4] == ["python", "-m", "pytest", "--junitxml=/j"] and argv[-3:] == ["-p", "testpilot_pytest", "a"]
    with pytest.raises(ConfigError, match="balance the quotes"):
        build_argv("pytest 'oops", tests=[], junit="j", app="x")
    with pytest.raises(ConfigError, match="stand alone"):
        build_argv("pytest --x={tests}", tests=[], junit="j", app="x")


def test_streams_lines_in_order_as_they_arrive(tmp_path):
    script = "import sys,time\nfor i in range(3):\n    print(f'out {i}', flush=True)\n    time.sleep(0.2)\n" \
             "print('err', file=sys.stderr, flush=True)\nsys.exit(3)\n"
    seen: list[tuple[float, str, str]] = []
    result = run_local([sys.executable, "-c", script], cwd=str(tmp_path), env={}, timeout=30,
                       on_line=lambda stream, line: seen.append((time.monotonic(), stream, line)))
    assert [(s, line) for _, s, line in seen] == [("stdout", "out 0"), ("stdout", "out 1"), ("stdout", "out 2"),
                                                  ("stderr", "err")]
    assert seen[2][0] - seen[0][0] >= 0.3, "lines were buffered instead of streamed"
    assert result.exit_code == 3 and not result.timed_out and result.tail[-1] == "err"


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child-alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time, pathlib\ntime.sleep(2)\npathlib.Path({str(marker)!r}).touch()\n")
    script = (f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(child)!r}])\n"
              "print('started', flush=True)\ntime.sleep(60)\n")
    result = run_local([sys.executable, "-c", script], cwd=str(tmp_path), env={}, timeout=1)
    assert result.timed_out and result.duration < 10
    time.sleep(2.5)
    assert not marker.exists(), "the grandchild survived the timeout"


def test_watch_aborts(tmp_path):
    script = "import time\nprint('booting', flush=True)\nprint('Kernel panic - not syncing', flush=True)\ntime.sleep(30)\n"
    result = run_local([sys.executable, "-c", script], cwd=str(tmp_path), env={}, timeout=30,
                       watch=lambda line: "kernel panic" if "Kernel panic" in line else None)
    assert result.aborted == "kernel panic" and result.duration < 5


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1"
 skipped="1" tests="4" time="0.5"><testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="1"
 time="0.1"><system-out>hello</system-out></testcase><testcase classname="tests.test_a.TestK" name="test_bad[1]"
 file="tests/test_a.py" line="5" time="0.2"><failure message="assert 1 == 2">tests/test_a.py:6: AssertionError
</failure></testcase><testcase classname="tests.test_a" name="test_err" file="tests/test_a.py" time="0"><error
 message="failed on setup with &quot;ConnectionError&quot;">trace</error></testcase><testcase classname="tests.test_a"
 name="test_skip" file="tests/test_a.py" time="0"><skipped message="later"/></testcase></testsuite></testsuites>"""


def test_parse_junit(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    results = {r.node_id: r for r in parse_junit(path, app="a", shard=2)}
    assert set(results) == {"tests/test_a.py::test_ok", "tests/test_a.py::TestK::test_bad[1]",
                            "tests/test_a.py::test_err", "tests/test_a.py::test_skip"}
    bad = results["tests/test_a.py::TestK::test_bad[1]"]
    assert (bad.outcome, bad.message, bad.duration, bad.shard) == ("failed", "assert 1 == 2", 0.2, 2)
    assert "AssertionError" in bad.traceback
    assert results["tests/test_a.py::test_ok"].stdout == "hello"
    assert results["tests/test_a.py::test_err"].outcome == "error"
    assert results["tests/test_a.py::test_skip"].outcome == "skipped"
    assert parse_junit(tmp_path / "missing.xml", app="a") == []


def test_shards_balance_by_duration():
    durations = {"a": 10, "b": 9, "c": 5, "d": 4, "e": 1, "f": 1}
    shards = split_shards(list(durations), 2, durations)
    loads = sorted(sum(durations[t] for t in s) for s in shards)
    assert loads == [15, 15]
    assert sorted(t for s in shards for t in s) == sorted(durations)
    assert [len(s) for s in split_shards(["x", "y", "z"], 5)] == [1, 1, 1]
    assert split_shards([], 3) == []


def test_missing_results_become_error_records():
    from testpilot.execution.local import CommandResult

    res = shard_result(app="a", shard=0, tests=["t1.py", "t2.py"], results=[],
                       outcome=CommandResult(exit_code=None, timed_out=True, tail=["last words"]), timeout=5)
    assert [r.outcome for r in res.results] == ["error", "error"]
    assert res.results[0].message == "shard timed out after 5s" and res.results[0].phase == "timeout"
    assert not res.ok
