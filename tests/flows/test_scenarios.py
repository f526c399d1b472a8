"""The scenario flow against the session's Prefect server: real service processes, real pytest and
command steps in provisioned local environments, real data flow files."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

from flows.scenario import run_scenarios, scenario
from testpilot.environments.local import leftover_workdirs
from testpilot.scenarios.services import running_pids
from testpilot.settings import get_settings
from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.flows


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path: Path) -> Iterator[None]:
    """Persisted step results go to this test's folder, not the user's Prefect home."""
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "results"}):
        yield


def _copy_examples(tmp_path: Path, change: Any = None) -> str:
    root = tmp_path / "examples"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    suite = root / "testpilot.yaml"
    if change:
        data = yaml.safe_load(suite.read_text())
        change(data)
        suite.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(suite)


def _steps(summary: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {s["name"]: (s["status"], s["state"], s["reason"]) for s in summary["steps"]}


def _no_leftovers() -> None:
    assert leftover_workdirs(get_settings().home) == []
    assert running_pids() == []


def test_example_payment_scenario_passes_with_real_services(prefect_api: str, tmp_path: Path) -> None:
    [summary] = run_scenarios(_copy_examples(tmp_path), names=["end-to-end-payment"])
    assert summary["verdict"] == "passed", summary
    assert {n: s[:2] for n, s in _steps(summary).items()} == {
        "test_login": ("passed", "Completed"), "test_create_payment": ("passed", "Completed"),
        "test_confirm_payment": ("passed", "Completed"), "test_shows_payment": ("passed", "Completed")}
    outputs = {s["name"]: s["outputs"] for s in summary["steps"]}
    assert outputs["test_login"] == ["token"] and outputs["test_create_payment"] == ["payment_id"]
    assert {app: s["ok"] for app, s in summary["services"].items()} == {"payment-service": True,
                                                                      "user-service": True}
    assert all(s["url"].startswith("http://127.0.0.1:") for s in summary["services"].values())
    _no_leftovers()


def test_payment_service_down_skips_its_steps_and_dependents_and_is_blocked(prefect_api: str,
                                                                           tmp_path: Path) -> None:
    def payment_exits(data: dict[str, Any]) -> None:
        data["apps"]["payment-service"]["service"] = {
            "command": "python -c \"import sys; sys.exit('payment-db unreachable')\" --port {port}",
            "health": {"http": "http://127.0.0.1:{port}/health", "retries": 6, "backoff": 0.1}}
        data["scenarios"]["end-to-end-payment"]["steps"].append(
            {"app": "user-service", "test": "tests/api/test_auth.py::test_login_with_wrong_password_is_refused",
             "after": ["test_login"]})

    state = scenario(suite=_copy_examples(tmp_path, payment_exits), name="end-to-end-payment", return_state=True)
    assert state.is_completed() and state.name == "Blocked", (state.name, state.message)
    summary = state.result()
    assert summary["verdict"] == "blocked"
    steps = _steps(summary)
    reason = steps["test_create_payment"][2]
    assert reason == "app payment-service unavailable: service exited with code 1 (payment-db unreachable)"
    for name in ("test_create_payment", "test_confirm_payment", "test_shows_payment"):
        assert steps[name] == ("skipped", "Skipped", reason), name
    assert steps["test_login"][:2] == ("passed", "Completed")
    assert steps["test_login_with_wrong_password_is_refused"][:2] == ("passed", "Completed")
    assert summary["services"]["payment-service"]["ok"] is False
    _no_leftovers()


def _resume_suite(tmp_path: Path) -> tuple[str, Path, Path]:
    root = tmp_path / "scenariosuite"
    shutil.copytree(FIXTURES / "scenariosuite", root)
    counter, flag = tmp_path / "counter.txt", tmp_path / "fail.flag"
    suite = root / "testpilot.yaml"
    data = yaml.safe_load(suite.read_text())
    data["apps"]["steps"]["env"].update(STEP_COUNTER=str(counter), FAIL_FLAG=str(flag))
    suite.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(suite), counter, flag


def _counts(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_rerun_resumes_from_the_failed_step(prefect_api: str, tmp_path: Path) -> None:
    suite, counter, flag = _resume_suite(tmp_path)
    flag.touch()
    first = scenario(suite=suite, name="resume", resume_key="head-1", return_state=True)
    assert first.is_failed()
    summary = first.result(raise_on_failure=False)
    assert summary["verdict"] == "failed"
    assert _steps(summary)["confirm"][:2] == ("failed", "Failed")
    assert "exited with code 1: confirm: the payment provider declined order 42" in _steps(summary)["confirm"][2]
    assert _steps(summary)["test_receipt"] == ("skipped", "Skipped", "dependency confirm failed")
    assert _counts(counter) == Counter({"login": 1, "create": 1, "confirm": 1})

    flag.unlink()
    second = scenario(suite=suite, name="resume", resume_key="head-1", return_state=True)
    assert second.is_completed() and second.name == "Completed", second.message
    summary = second.result()
    assert {n: s[:2] for n, s in _steps(summary).items()} == {
        "test_login": ("passed", "Cached"), "test_create": ("passed", "Cached"), "confirm": ("passed", "Completed"),
        "test_receipt": ("passed", "Completed")}
    assert [s["name"] for s in summary["steps"] if s["reused"]] == ["test_login", "test_create"]
    assert _counts(counter) == Counter({"login": 1, "create": 1, "confirm": 2, "receipt": 1})

    scenario(suite=suite, name="resume", resume_key="head-2")  # another key: nothing reused
    assert _counts(counter) == Counter({"login": 2, "create": 2, "confirm": 3, "receipt": 2})
    _no_leftovers()


def test_wrong_typed_output_blocks_the_consumer_not_a_failure(prefect_api: str, tmp_path: Path) -> None:
    suite, counter, _ = _resume_suite(tmp_path)
    state = scenario(suite=suite, name="wrong-type", return_state=True)
    assert state.name == "Blocked" and not state.is_failed()
    steps = _steps(state.result())
    assert steps["confirm"] == ("blocked", "Blocked",
                                "input 'order': step test_create_wrong_type (app steps) published output 'order' "
                                "as str 'forty-two', expected int")
    assert steps["test_unrelated"][:2] == ("passed", "Completed")
    assert "confirm" not in _counts(counter)


def test_scenario_pools_name_every_app_a_scenario_needs() -> None:
    suite = str(REPO / "examples" / "testpilot.yaml")
    from flows.scenario import scenario_pools

    assert scenario_pools(suite) == {"integration": ["payment-service", "user-service", "web-frontend"]}
    assert scenario_pools(suite, names=[]) == {}
