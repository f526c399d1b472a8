"""Service processes and step execution without Prefect: real processes, real HTTP on loopback, real pytest."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from testpilot.errors import ConfigError
from testpilot.scenarios.dataflow import install_plugin
from testpilot.scenarios.plan import plan_scenario
from testpilot.scenarios.services import (
    exit_status,
    free_port,
    running_pids,
    service_argv,
    start_service,
    stop_service,
    url_variable,
    wait_healthy,
)
from testpilot.scenarios.steps import execute_step, involved_apps
from testpilot.suite import AppConfig, HealthCheck, parse_suite


def test_url_variable_and_argv_never_meet_a_shell() -> None:
    assert url_variable("payment-service") == "PAYMENT_SERVICE_URL"
    assert service_argv("python -m srv --port {port} --name 'a b;rm -rf ~'", port=8123) == [
        "python", "-m", "srv", "--port", "8123", "--name", "a b;rm -rf ~"]
    with pytest.raises(ConfigError, match="apps.web.service.command"):
        service_argv("python 'unbalanced", port=1, app="web")


def test_service_starts_answers_and_its_whole_group_stops(tmp_path: Path) -> None:
    port = free_port()
    log = str(tmp_path / "svc.log")
    pid = start_service("web", f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}", cwd=str(tmp_path),
                        env=dict(os.environ), port=port, log_path=log)
    try:
        health = wait_healthy(pid, HealthCheck(http="http://127.0.0.1:{port}/", retries=40, backoff=0.05),
                              port=port, log_path=log, sleep=lambda _s: time.sleep(0.05))
        assert health.ok, health.detail
        assert health.detail == f"HTTP GET http://127.0.0.1:{port}/: 200"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
        assert pid in running_pids()
    finally:
        stop_service(pid, grace=2)
    assert pid not in running_pids()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_a_service_that_exits_is_unavailable_with_its_exit_code_and_log(tmp_path: Path) -> None:
    port = free_port()
    log = str(tmp_path / "svc.log")
    pid = start_service("pay", f"{sys.executable} -c \"import sys; sys.exit('no database')\" {{port}}",
                        cwd=str(tmp_path), env=dict(os.environ), port=port, log_path=log)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(0.2)  # real time for the process to exit; the recorded backoff is what we check

    health = wait_healthy(pid, HealthCheck(tcp="127.0.0.1:{port}", retries=30, backoff=1.0), port=port,
                          log_path=log, sleep=sleep)
    assert not health.ok
    assert health.detail == "service exited with code 1 (no database)"
    assert exit_status(pid) == 1
    assert len(slept) < 30 and slept == [1.0 * 2 ** i for i in range(len(slept))]  # stopped retrying early
    stop_service(pid)


def test_a_missing_program_is_a_down_service_not_a_crash(tmp_path: Path) -> None:
    log = str(tmp_path / "svc.log")
    pid = start_service("pay", "no-such-program-xyz --port {port}", cwd=str(tmp_path), env=dict(os.environ),
                        port=1, log_path=log)
    health = wait_healthy(pid, None, port=1, log_path=log)
    assert (pid, health.ok) == (0, False)
    assert health.detail.startswith("service did not start: testpilot: cannot start no-such-program-xyz")


SUITE = {
    "apps": {
        "a": {"path": ".", "test_command": f"{sys.executable} -m pytest {{tests}}", "depends_on": ["b"]},
        "b": {"path": ".", "test_command": "pytest {tests}"},
        "c": {"path": ".", "test_command": "pytest {tests}"},
    },
    "scenarios": {"s": {
        "steps": [{"app": "a", "test": "tests/test_s.py::test_make", "outputs": {"n": "int"}},
                  {"app": "a", "command": f"{sys.executable} check.py", "name": "check"}],
        "data_flow": {"n": {"from": "a.test_make.n", "to": "a.check.n", "type": "int"}}}},
}


def test_involved_apps_follow_depends_on() -> None:
    suite = parse_suite(SUITE)
    assert involved_apps(suite, ["a"]) == ["a", "b"]
    assert involved_apps(suite, ["c"]) == ["c"]


def _workdir(tmp_path: Path) -> Path:
    app = tmp_path / "a"
    (app / "tests").mkdir(parents=True)
    (app / "tests" / "test_s.py").write_text(
        "import os\n\ndef test_make(testpilot_outputs):\n"
        "    testpilot_outputs['n'] = int(os.environ.get('MAKE_N', '3'))\n"
        "    assert os.environ.get('MAKE_FAIL') != '1', 'asked to fail'\n")
    (app / "check.py").write_text(
        "import json, os, sys\n"
        "n = json.load(open(os.environ['TESTPILOT_INPUTS']))['n']\n"
        "assert os.environ['TESTPILOT_INPUT_N'] == str(n)\n"
        "json.dump({'double': 2 * n}, open(os.environ['TESTPILOT_OUTPUTS'], 'w'))\n"
        "sys.exit(0 if n < 10 else 4)\n")
    (tmp_path / ".testpilot").mkdir()
    install_plugin(tmp_path / ".testpilot")
    return tmp_path


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(workdir / ".testpilot"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}


def test_pytest_then_command_step_with_data_flow(tmp_path: Path) -> None:
    suite = parse_suite(SUITE)
    plan = plan_scenario("s", suite.scenarios["s"])
    workdir = _workdir(tmp_path)
    app = suite.apps["a"]
    made = execute_step(plan.step("test_make"), {}, scenario="s", app=app, workdir=str(workdir), env=_env(workdir))
    assert (made.status, dict(made.outputs)) == ("passed", {"n": 3})
    checked = execute_step(plan.step("check"), {"n": 3}, scenario="s", app=app, workdir=str(workdir),
                           env=_env(workdir))
    assert (checked.status, dict(checked.outputs)) == ("passed", {"double": 6})
    inputs = json.loads((workdir / ".testpilot" / "scenarios" / "s" / "check.inputs.json").read_text())
    assert inputs == {"n": 3}


def test_failing_steps_say_why(tmp_path: Path) -> None:
    suite = parse_suite(SUITE)
    plan = plan_scenario("s", suite.scenarios["s"])
    workdir = _workdir(tmp_path)
    app: AppConfig = suite.apps["a"]
    made = execute_step(plan.step("test_make"), {}, scenario="s", app=app, workdir=str(workdir),
                        env=_env(workdir, MAKE_FAIL="1"))
    assert (made.status, made.cause) == ("failed", "failure")
    assert made.reason.startswith("tests/test_s.py::test_make failed: AssertionError: asked to fail")
    assert dict(made.outputs) == {"n": 3}  # published before the assertion, kept for inspection
    checked = execute_step(plan.step("check"), {"n": 12}, scenario="s", app=app, workdir=str(workdir),
                           env=_env(workdir))
    assert checked.status == "failed" and "check.py exited with code 4" in checked.reason
