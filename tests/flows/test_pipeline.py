import json
import threading
import time
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.pipeline import pipeline
from tasks.locks import pool_locks
from testpilot.environments.local import leftover_workdirs
from testpilot.errors import LockTimeout, TestsFailed
from testpilot.settings import get_settings
from tests.conftest import commit_change, make_repo

pytestmark = pytest.mark.flows


def artifacts_of(run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key or a.type: a for a in found}


def test_pipeline_selects_runs_reports_and_cleans_up(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    state = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD",
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    run_id = state.state_details.flow_run_id
    report = json.loads((Path(summary["results_dir"]) / "report.json").read_text())
    selected = {(t["app"], t["test_id"]) for t in report["selection"]["selected"]}
    assert selected == {("alpha", "tests/test_prices.py"), ("beta", "tests/test_more.py"),
                        ("beta", "tests/test_report.py")}
    assert {(t["app"], t["test_id"]) for t in report["selection"]["skipped"]} == {("alpha", "tests/test_names.py")}
    assert all(t["reasons"] for t in report["selection"]["selected"])
    outcomes = {r["node_id"]: r["outcome"] for r in report["results"]}
    assert outcomes["tests/test_report.py::test_database_seeded"] == "passed"  # data was seeded
    assert len(outcomes) == 6 and set(outcomes.values()) == {"passed"}
    assert "<testsuites" in (Path(summary["results_dir"]) / "junit.xml").read_text()
    assert leftover_workdirs(get_settings().home) == []
    artifacts = artifacts_of(run_id)
    assert "testpilot-summary" in artifacts and "PASSED" in str(artifacts["testpilot-summary"].data)
    assert "testpilot-results-minisuite" in artifacts and "progress" in artifacts
    assert len(json.loads(artifacts["testpilot-results-minisuite"].data)) == 6
    from tasks.reports import known_durations, read_history

    durations = known_durations(read_history("minisuite"))
    assert ("alpha", "tests/test_prices.py::test_total") in durations and ("beta", "tests/test_report.py") in durations


def test_failing_test_fails_the_run_with_category_and_owner(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    state = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD",
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, TestsFailed) and error.failed == 1
    report = json.loads(next((tmp_path / "results").glob("*/report.json")).read_text())
    [failure] = report["failures"]
    assert failure["node_id"] == "tests/test_prices.py::test_total"
    assert (failure["category"], failure["owner"]) == ("product_bug", "alpha-team")
    assert leftover_workdirs(get_settings().home) == []


def test_lock_timeout_names_the_holder(prefect_api):
    holding = threading.Event()
    release = threading.Event()

    @flow(name="lock-holder")
    def holder() -> None:
        with pool_locks({"lockpool": 1}, timeout=30, lease_seconds=60):
            holding.set()
            release.wait(30)

    @flow(name="lock-waiter")
    def waiter() -> None:
        with pool_locks({"lockpool": 1}, timeout=4, lease_seconds=60):
            pass

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(30)
        time.sleep(1.5)  # let the acquisition event reach the server
        state = waiter(return_state=True)
        error = state.result(raise_on_failure=False)
        assert isinstance(error, LockTimeout)
        assert error.pool == "lockpool" and len(error.holders) == 1 and "Running" in error.holders[0]
    finally:
        release.set()
        thread.join()
