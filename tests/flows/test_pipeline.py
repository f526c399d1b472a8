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
from tasks.verdict import read_verdict
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
    assert {(t["app"], t["test_id"]) for t in report["selection"]["skipped"]} == {
        ("alpha", "tests/test_names.py"), ("gamma", "tests/test_maths.py")}
    assert all(t["reasons"] for t in report["selection"]["selected"])
    outcomes = {r["node_id"]: r["outcome"] for r in report["results"]}
    assert outcomes["tests/test_report.py::test_database_seeded"] == "passed"  # data was seeded
    assert len(outcomes) == 6 and set(outcomes.values()) == {"passed"}
    assert "<testsuites" in (Path(summary["results_dir"]) / "junit.xml").read_text()
    written = json.loads((Path(summary["results_dir"]) / "selection.json").read_text())
    assert {(t["app"], t["test_id"]) for t in written["selected"]} == selected
    assert leftover_workdirs(get_settings().home) == []
    artifacts = artifacts_of(run_id)
    assert "testpilot-summary" in artifacts and "PASSED" in str(artifacts["testpilot-summary"].data)
    assert "testpilot-results-minisuite" in artifacts and "progress" in artifacts
    assert len(json.loads(artifacts["testpilot-results-minisuite"].data)) == 6
    [verdict] = json.loads(artifacts["testpilot-verdict"].data)  # what `testpilot ci` reads back
    assert (verdict["exit_code"], verdict["verdict"], verdict["tests"], verdict["failed"]) == (0, "passed", 6, 0)
    from tasks.reports import known_durations, read_history

    durations = known_durations(read_history("minisuite"))
    assert ("alpha", "tests/test_prices.py::test_total") in durations and ("beta", "tests/test_report.py") in durations


def progress_updates(artifact_id, expected: int, timeout: float = 30) -> list[dict]:
    """The ``prefect.artifact.updated`` events of one artifact, oldest first: Prefect keeps only the
    artifact's last value, but every update emits an event carrying the new progress and description."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOrder, EventResourceFilter

    deadline = time.monotonic() + timeout
    while True:  # the events reach the server's persister in batches
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=EventFilter(
                event=EventNameFilter(name=["prefect.artifact.updated"]), order=EventOrder.ASC,
                resource=EventResourceFilter(id=[f"prefect.artifact.{artifact_id}"])), limit=50)
        if len(page.events) >= expected or time.monotonic() > deadline:
            return [e.payload for e in sorted(page.events, key=lambda e: e.occurred)]
        time.sleep(1)


def test_progress_moves_per_node_and_ends_at_100_with_the_verdict(prefect_api, tmp_path):
    """The issue: the progress artifact's description stayed '...: selecting' at 100 %."""
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, results_dir=str(tmp_path / "results"),
                     return_state=True)
    assert state.is_failed()
    nodes = json.loads(next((tmp_path / "results").glob("*/report.json")).read_text())["nodes"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    # the shards' own progress artifacts are named after their node ("alpha[0] on local-0")
    [progress] = [a for a in found if a.type == "progress" and (a.description or "").startswith("Testpilot ")]
    expected = f"Testpilot minisuite: {state.message}"[:500]
    assert (progress.data, progress.description) == (100.0, expected)
    assert state.message.startswith("FAILED: 1 of ") and "selecting" not in progress.description

    updates = progress_updates(progress.id, expected=len(nodes) + 4)
    values = [u["data"] for u in updates]
    assert values == sorted(values) and values[-1] == 100.0, updates
    per_node = [u for u in updates if ": running, " in u.get("description", "")]
    assert [u["description"].split(": running, ")[1].split(" node(s)")[0] for u in per_node] == [
        f"{k} of {len(nodes)}" for k in range(1, len(nodes) + 1)], updates
    assert len({u["data"] for u in per_node}) == len(nodes)  # each node moved it on
    assert {u["description"].rsplit("(last: ", 1)[1].rstrip(")") for u in per_node} == {
        v["state"] for v in nodes.values()}
    assert updates[-1]["description"] == expected


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
    [verdict] = read_verdict(state.state_details.flow_run_id)
    assert (verdict["exit_code"], verdict["failed"], verdict["message"]) == (1, 1, state.message)
    assert state.message.startswith("FAILED: 1 of 4 test(s) failed: alpha tests/test_prices.py::test_total")


def test_a_run_that_raises_publishes_its_exit_code(prefect_api, tmp_path):
    """The on_failure hook publishes the verdict of a run that stopped on an error: a bad ref is exit 2."""
    repo = make_repo(tmp_path)
    state = pipeline(suite=str(repo / "testpilot.yaml"), base="no-such-ref", head="HEAD", return_state=True)
    assert state.is_failed()
    [verdict] = read_verdict(state.state_details.flow_run_id)
    assert verdict["exit_code"] == 2 and "unknown git ref 'no-such-ref'" in verdict["message"]


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


def test_failed_node_skips_its_dependents_and_unrelated_branches_complete(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, results_dir=str(tmp_path / "results"),
                     return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    by_name = {r.name: r.state for r in runs}
    assert by_name["app:alpha#0"].name == "Failed"
    for shard in ("app:beta#0", "app:beta#1"):
        assert by_name[shard].name == "Skipped"
        assert by_name[shard].message == "dependency app:alpha#0 failed"
    assert by_name["app:gamma#0"].name == "Completed"
    report = json.loads(next((tmp_path / "results").glob("*/report.json")).read_text())
    assert report["nodes"]["app:beta#1"] == {"state": "Skipped", "reason": "dependency app:alpha#0 failed"}
    summary = artifacts_of(state.state_details.flow_run_id)["testpilot-summary"].data
    assert "```mermaid" in summary and "app:beta#0" in summary or "beta" in summary.split("```mermaid")[1]


def test_fail_fast_cancels_pending_nodes(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, results_dir=str(tmp_path / "results"),
                     max_parallel=1, fail_fast=True, return_state=True)
    assert state.is_failed()
    report = json.loads(next((tmp_path / "results").glob("*/report.json")).read_text())
    nodes = report["nodes"]
    assert nodes["app:alpha#0"]["state"] == "Failed"
    cancelled = [n for n, v in nodes.items() if v["state"] == "Cancelled"]
    assert cancelled and all("fail_fast" in nodes[n]["reason"] for n in cancelled)


def test_dataset_is_generated_once_then_cached_and_failures_are_retrievable(prefect_api, tmp_path):
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    from flows.cli import main

    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    states = [pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD",
                       results_dir=str(tmp_path / f"results{i}"), return_state=True) for i in range(2)]
    with get_client(sync_client=True) as client:
        generated = [client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[s.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="generate-data")))[0].state.name
            for s in states]
    assert generated[1] == "Cached", generated
    first, second = (json.loads(next((tmp_path / f"results{i}").glob("*/report.json")).read_text())["clusters"]
                     ["clusters"] for i in range(2))
    [cluster] = second
    assert cluster["count"] == 1 and cluster["category"] == "product_bug" and cluster["team"] == "alpha-team"
    assert cluster["id"] == first[0]["id"]
    assert cluster["runs_seen"] == first[0]["runs_seen"] + 1, "the second run should match the first run's cluster"
    assert main(["failures", "--run", str(states[1].state_details.flow_run_id)]) == 0


def test_the_run_is_renamed_with_the_commits_once_a_fetch_resolves_them(prefect_api, tmp_path):
    """The name is first computed before the clone has the head commit; after the checkout fetched it,
    the run shows its sha, not the raw ref."""
    import subprocess

    from tests.conftest import git

    origin = make_repo(tmp_path / "origin")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    commit_change(origin, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join', "pushed after the clone")
    new = git(origin, "rev-parse", "HEAD").strip()
    state = pipeline(suite=str(clone / "testpilot.yaml"), repo=str(clone), base="origin/main", head=new,
                     results_dir=str(tmp_path / "results"), return_state=True)
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(state.state_details.flow_run_id).name
    base = git(clone, "rev-parse", "origin/main").strip()
    assert name.startswith(f"{base[:10]}..{new[:10]}"), name
