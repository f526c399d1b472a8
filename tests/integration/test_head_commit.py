"""The commit asked for is the commit tested: a breaking commit fails even when the checkout holds its fix.

Through the CLI and through a deployment run on a real process worker (the path CI and schedules use).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.sorting import FlowRunSort

from tests.conftest import REPO, commit_change, git, make_repo
from tests.integration.test_cli import cli, finish
from tests.integration.test_deployment import PREFECT, run

pytestmark = [pytest.mark.flows, pytest.mark.slow]
FAILING = "alpha::tests/test_prices.py::test_total"


def break_then_fix(tmp_path: Path) -> tuple[Path, str]:
    """A repo whose HEAD~1 breaks test_total and whose HEAD (the checkout) fixes it; returns the break sha."""
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty * 2", "break total")
    broken = git(repo, "rev-parse", "HEAD").strip()
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty * 2", "price * qty", "fix total")
    return repo, broken


def test_cli_tests_the_head_commit_not_the_checkout(prefect_api, tmp_path):
    repo, broken = break_then_fix(tmp_path)
    code, out, err = finish(cli("run", "--suite", str(repo / "testpilot.yaml"), "--base", "HEAD~2",
                                "--head", "HEAD~1", "--results", str(tmp_path / "results")))
    assert code == 1, (out, err)
    assert f"FAILED {FAILING} (owner: alpha-team" in out
    assert f"Tested commit {broken} (head=HEAD~1)" in out
    [report] = (tmp_path / "results").glob("*/report.json")
    data = json.loads(report.read_text())
    assert data["head_commit"] == broken and data["source"]["commit"] == broken
    assert [f"{f['app']}::{f['node_id']}" for f in data["failures"]] == [FAILING]
    assert (repo / "apps/alpha/src/alpha/prices.py").read_text().count("price * qty") == 1  # checkout untouched
    run_tree = Path(os.environ["TESTPILOT_HOME"]) / "runs" / report.parent.name.replace("-", "")[:12]
    assert report.parent.name and not run_tree.exists()  # this run's tree is gone after the run


def _latest_run(deployment_id):
    with get_client(sync_client=True) as client:
        [flow_run] = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                           sort=FlowRunSort.START_TIME_DESC, limit=1)
    return flow_run


def test_deployment_tests_the_head_commit_and_names_the_suite_parameter(prefect_api, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_CLI_PROMPT": "false"}
    assert run([sys.executable, "-m", "deployments.setup"], env).returncode == 0
    deploy = run([*PREFECT, "--no-prompt", "deploy", "--name", "pipeline"], env)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("testpilot-pipeline/pipeline")
    assert (REPO / deployment.parameters["suite"]).is_file()  # the default suite exists in this repository
    repo, broken = break_then_fix(tmp_path)
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", "testpilot-process"], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        watched = run([*PREFECT, "deployment", "run", "testpilot-pipeline/pipeline", "--watch",
                       "-p", f"repo={repo}", "-p", "suite=testpilot.yaml", "-p", "base=HEAD~2", "-p", "head=HEAD~1",
                       "-p", f"results_dir={tmp_path / 'results'}"], env, timeout=400)
        failed = _latest_run(deployment.id)
        missing = run([*PREFECT, "deployment", "run", "testpilot-pipeline/pipeline", "--watch",
                       "-p", f"repo={repo}", "-p", "suite=nope.yaml"], env, timeout=200)
        unresolved = _latest_run(deployment.id)
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert watched.returncode == 1, watched.stdout + watched.stderr + worker_log[-3000:]
    [report] = (tmp_path / "results").glob("*/report.json")
    data = json.loads(report.read_text())
    assert data["head_commit"] == broken
    assert [f"{f['app']}::{f['node_id']}" for f in data["failures"]] == [FAILING]
    assert failed.name.startswith(git(repo, "rev-parse", "HEAD~2").strip()[:10] + ".." + broken[:10])
    assert "1 of" in (failed.state.message or "") and "failed" in failed.state.message
    assert missing.returncode == 1
    message = unresolved.state.message or ""
    assert "deployment parameter 'suite'" in message and "--suite" not in message, message
    assert f"{repo / 'nope.yaml'}" in message
