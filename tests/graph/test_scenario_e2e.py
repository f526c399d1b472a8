"""A payment scenario end to end without Prefect: real loopback services, real health checks, real pytest
step runs with the plugin and data flow files, planned and decided by testpilot.scenarios."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from testpilot.scenarios.config import ScenarioConfig
from testpilot.scenarios.dataflow import (
    PLUGIN_MODULE,
    install_plugin,
    read_outputs,
    step_environment,
    write_inputs,
)
from testpilot.scenarios.health import run_health_check
from testpilot.scenarios.plan import PlannedStep, StepResult, plan_scenario, run_scenario
from testpilot.suite import HealthCheck

STEPS = '''
import json, os, urllib.request

def _count(name):
    with open(os.environ["STEP_COUNTER"], "a") as fh:
        fh.write(name + "\\n")

def _call(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())

def test_login(testpilot_outputs):
    _count("login")
    testpilot_outputs["token"] = _call(os.environ["USER_URL"], "/login", {"user": "ada"})["token"]

def test_create_payment(testpilot_inputs, testpilot_outputs):
    _count("create_payment")
    got = _call(os.environ["PAYMENT_URL"], "/payments", {"token": testpilot_inputs["token"], "amount": 12})
    testpilot_outputs["payment_id"] = got["id"]

def test_confirm(testpilot_inputs):
    _count("confirm")
    got = _call(os.environ["PAYMENT_URL"], "/confirm", {"id": testpilot_inputs["pid"]})
    assert got["status"] == "confirmed"

def test_profile(testpilot_inputs):
    _count("profile")
    assert testpilot_inputs["token"].startswith("tok-")
'''

SCENARIO = ScenarioConfig.model_validate({
    "steps": [
        {"app": "user-service", "test": "test_steps.py::test_login", "outputs": {"token": "str"}},
        {"app": "payment-service", "test": "test_steps.py::test_create_payment", "outputs": {"payment_id": "int"}},
        {"app": "payment-service", "test": "test_steps.py::test_confirm"},
        {"app": "user-service", "test": "test_steps.py::test_profile", "after": ["test_login"]},
    ],
    "data_flow": {
        "token": {"from": "user-service.test_login.token", "to": "payment-service.test_create_payment.token"},
        "token2": {"from": "user-service.test_login.token", "to": "user-service.test_profile.token"},
        "pid": {"from": "payment-service.test_create_payment.payment_id", "to": "payment-service.test_confirm.pid",
                "type": "int"},
    },
})


class _Service(http.server.BaseHTTPRequestHandler):
    confirm_failures = 0

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200 if self.path == "/health" else 404, {"ok": True})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/login":
            self._reply(200, {"token": f"tok-{body['user']}"})
        elif self.path == "/payments" and body["token"].startswith("tok-"):
            self._reply(200, {"id": 7})
        elif self.path == "/confirm":
            cls = type(self)
            if cls.confirm_failures:
                cls.confirm_failures -= 1
                self._reply(200, {"status": "declined"})
            else:
                self._reply(200, {"status": "confirmed"})
        else:
            self._reply(400, {})

    def _reply(self, code: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def services() -> Iterator[dict[str, Any]]:
    started = []
    urls: dict[str, Any] = {}
    for name in ("user", "payment"):
        handler = type(f"{name}Handler", (_Service,), {"confirm_failures": 0})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        urls[name] = (f"http://127.0.0.1:{srv.server_address[1]}", handler)
    yield urls
    for srv in started:
        srv.shutdown()
        srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executor(folder: Path, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Runs one step as `pytest -p testpilot_pytest <node id>` with the data flow files."""
    (folder / "plugin").mkdir(exist_ok=True)
    install_plugin(folder / "plugin")
    (folder / "test_steps.py").write_text(STEPS)

    def execute(step: PlannedStep, inputs: Mapping[str, Any]) -> StepResult:
        inputs_file, outputs_file = folder / f"{step.name}.in.json", folder / f"{step.name}.out.json"
        write_inputs(inputs_file, inputs)
        outputs_file.unlink(missing_ok=True)
        full = {k: v for k, v in os.environ.items() if not k.startswith("TESTPILOT_")}
        full.update(env)
        full.update(step_environment(inputs, str(inputs_file), str(outputs_file)),
                    PYTHONPATH=str(folder / "plugin"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        assert step.test is not None
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", PLUGIN_MODULE,  # noqa: S603
                               "-p", "no:cacheprovider", step.test], cwd=folder, env=full,
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode:
            return StepResult("failed", read_outputs(outputs_file), reason=proc.stdout.strip().splitlines()[-1],
                              cause="failure")
        return StepResult("passed", read_outputs(outputs_file))

    return execute


def _counts(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _health(urls: dict[str, str]) -> dict[str, str]:
    unavailable = {}
    slept: list[float] = []
    for app, url in urls.items():
        result = run_health_check(HealthCheck(http=url + "/health", retries=2, backoff=0.1), sleep=slept.append)
        if not result.ok:
            unavailable[app] = result.detail
    return unavailable


def test_payment_service_down_skips_its_steps_and_reports_blocked(tmp_path: Path,
                                                                  services: dict[str, Any]) -> None:
    user_url, _ = services["user"]
    down = f"http://127.0.0.1:{_closed_port()}"
    counter = tmp_path / "counter.txt"
    unavailable = _health({"user-service": user_url, "payment-service": down})
    assert unavailable == {"payment-service": f"HTTP GET {down}/health: Connection refused (after 3 attempts)"}

    plan = plan_scenario("checkout", SCENARIO)
    run = run_scenario(plan, _executor(tmp_path, {"USER_URL": user_url, "PAYMENT_URL": down,
                                                  "STEP_COUNTER": str(counter)}), unavailable=unavailable)
    reason = f"app payment-service unavailable: HTTP GET {down}/health: Connection refused (after 3 attempts)"
    assert {n: (r.status, r.reason) for n, r in run.results.items()} == {
        "test_login": ("passed", ""), "test_create_payment": ("skipped", reason),
        "test_confirm": ("skipped", reason), "test_profile": ("passed", "")}
    assert run.results["test_login"].outputs == {"token": "tok-ada"}
    assert _counts(counter) == Counter({"login": 1, "profile": 1})
    assert run.verdict.status == "blocked"


def test_resume_after_failure_at_step_3_does_not_repeat_steps_1_and_2(tmp_path: Path,
                                                                       services: dict[str, Any]) -> None:
    (user_url, _), (payment_url, payment) = services["user"], services["payment"]
    payment.confirm_failures = 1
    counter = tmp_path / "counter.txt"
    env = {"USER_URL": user_url, "PAYMENT_URL": payment_url, "STEP_COUNTER": str(counter)}
    plan = plan_scenario("checkout", SCENARIO)
    assert _health({"user-service": user_url, "payment-service": payment_url}) == {}

    first = run_scenario(plan, _executor(tmp_path, env))
    assert first.verdict.status == "failed" and first.results["test_confirm"].status == "failed"
    assert first.results["test_create_payment"].outputs == {"payment_id": 7}
    assert _counts(counter) == Counter({"login": 1, "create_payment": 1, "confirm": 1, "profile": 1})

    persisted = json.loads(json.dumps({k: r.to_dict() for k, r in first.results.items()}))
    second = run_scenario(plan, _executor(tmp_path, env),
                          previous={k: StepResult.from_dict(v) for k, v in persisted.items()})
    assert second.ran == ("test_confirm",)
    assert second.verdict.status == "passed"
    assert _counts(counter) == Counter({"login": 1, "create_payment": 1, "confirm": 2, "profile": 1})
