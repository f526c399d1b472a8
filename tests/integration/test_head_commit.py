"""The commit asked for is the commit tested: a breaking commit fails even when the checkout holds its fix.

Through the CLI, through a deployment run on a real process worker (the path CI and schedules use), and
through the documented deployment whose worker gets the code from a `git_clone` pull step.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.sorting import FlowRunSort

from tests.conftest import REPO, commit_change, git, init_repo, make_repo
from tests.integration.conftest import worker
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


def _this_project(dest: Path) -> Path:
    """A repository holding this checkout's tracked files as they are now, committed once on main."""
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in names:
        if name and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return init_repo(dest, "testpilot")


def _break_then_fix(repo: Path, app: str) -> tuple[str, str]:
    """Commit a change that breaks alpha's test_total, then its fix; returns (parent of the break, the break)."""
    prices = f"{app}/src/alpha/prices.py"
    commit_change(repo, prices, "price * qty", "price * qty * 2", "break total")
    base, broken = git(repo, "rev-parse", "HEAD~1", "HEAD").split()
    commit_change(repo, prices, "price * qty * 2", "price * qty", "fix total")
    return base, broken


def _deploy_as_documented(env: dict[str, str], tmp_path: Path, name: str, servers: Path) -> None:
    """Deploy `name` exactly as docs/operations.md ("A `pull` step") shows it, with two changes: each git_clone
    clones from the bare repository in ``servers`` named like the docs' URL (testpilot.git, shop.git), and
    uses the docs' `access_token` form (a core Secret block) instead of `credentials`, which needs the
    prefect-github package. The token is harmless for a local repository: Prefect puts a token only into
    https URLs, but the step still resolves the block on the worker."""
    section = (REPO / "docs" / "operations.md").read_text().split("**A `pull` step.**", 1)[1]
    documented = re.search(r'use `(access_token: "[^"`]+")`\s+with\s+a\s+core\s+`Secret`\s+block', section)
    assert documented, "docs/operations.md no longer shows the access_token form"
    token = yaml.safe_load(documented.group(1))
    snippets = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:3]]
    config = yaml.safe_load((REPO / "prefect.yaml").read_text() + "".join(snippets))  # prefect.yaml's aliases
    [deployment] = [d for d in config["deployments"] if d["name"] == name]
    for step in deployment["pull"]:
        clone = step["prefect.deployments.steps.git_clone"]
        assert clone.pop("credentials").startswith("{{ prefect.blocks.github-credentials.")
        clone.update(token, repository=(servers / Path(urlparse(clone["repository"]).path).name).as_uri())
    Secret(value="not-used-by-a-file-url").save(token["access_token"].split(".")[-1].rstrip("} "), overwrite=True)
    config["deployments"] = [deployment]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config))
    setup = run([sys.executable, "-m", "deployments.setup"], env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deploy = run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")], env)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    with get_client(sync_client=True) as client:
        pulls = client.read_deployment_by_name(f"testpilot-pipeline/{name}").pull_steps
    assert pulls == deployment["pull"]  # the token stays a block reference


def _ci_on_a_worker_without_checkout(env: dict[str, str], tmp_path: Path, name: str, checkout: Path,
                                     *params: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`testpilot ci` from CI's checkout, with a worker whose folder holds no checkout; returns the --json
    summary and the report.json it downloaded, after checking that the run failed on test_total."""
    (tmp_path / "worker").mkdir()
    argv = [sys.executable, "-m", "flows.cli", "ci", "--deployment", f"testpilot-pipeline/{name}", "--json",
            "--results", str(tmp_path / "ci"), "--timeout", "500", "-p", "base=HEAD~2", "-p", "head=HEAD~1"]
    for param in params:
        argv += ["-p", param]
    with worker(env, tmp_path / "worker.log", cwd=tmp_path / "worker"):
        ci = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    worker_log = (tmp_path / "worker.log").read_text()
    context = f"exit {ci.returncode}\n{ci.stderr}\n{ci.stdout}\n{worker_log[-4000:]}"
    assert ci.returncode == 1, context
    summary = json.loads(ci.stdout)
    assert [(f["app"], f["test"], f["owner"], f["message"]) for f in summary["failing"]] == [
        ("alpha", "tests/test_prices.py::test_total", "alpha-team", "assert 14 == 7")], context  # price * qty * 2
    assert summary["state"] == "Failed" and summary["flow_run_id"] in worker_log, context
    return summary, json.loads((tmp_path / "ci" / "report.json").read_text())


def _tested_clone(report: dict[str, Any], commit: str) -> Path:
    """The clone the run wrote ``commit`` out from, after fetching the history its shallow clone lacked."""
    [tested] = [n for n in report["notes"] if n.startswith(f"Tested commit {commit} ")]
    clone = tested.split(", written out from ", 1)[1].split(";", 1)[0]
    assert any(n.startswith(f"Fetched from origin into {clone} (it was a shallow clone)") for n in report["notes"])
    return Path(clone)


def test_git_clone_pull_step_tests_the_head_commit(prefect_api, tmp_path):
    """The documented `pipeline-from-git`: the worker's git_clone makes a shallow clone of this project's default
    branch (which holds the fix), and the run fetches and tests the breaking commit `testpilot ci` sends."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_CLI_PROMPT": "false"}
    checkout = _this_project(tmp_path / "ci-checkout")  # CI's clone of this project; main ends with the fix
    minisuite = "tests/fixtures/minisuite"
    base, broken = _break_then_fix(checkout, f"{minisuite}/apps/alpha")
    git(tmp_path, "clone", "-q", "--bare", str(checkout), str(tmp_path / "git-server" / "testpilot.git"))
    _deploy_as_documented(env, tmp_path, "pipeline-from-git", tmp_path / "git-server")
    summary, report = _ci_on_a_worker_without_checkout(env, tmp_path, "pipeline-from-git", checkout,
                                                       f"suite={minisuite}/testpilot.yaml")
    assert summary["flow_run_name"].startswith(f"{base[:10]}..{broken[:10]}"), summary
    assert (report["base_commit"], report["head_commit"]) == (base, broken)
    clone = _tested_clone(report, broken)
    assert clone.name == "testpilot-main" and tmp_path not in clone.parents, clone  # the worker's own clone


def test_git_clone_of_a_separate_repository_under_test(prefect_api, tmp_path):
    """The documented two-step form: the repository under test cloned first, this project last (the flow runs
    in the last step's folder), `repo` = the first clone; the breaking commit is tested, not main's fix."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_CLI_PROMPT": "false"}
    servers = tmp_path / "git-server"
    git(tmp_path, "clone", "-q", "--bare", str(_this_project(tmp_path / "testpilot")), str(servers / "testpilot.git"))
    shop = make_repo(tmp_path)  # CI's checkout of the repository under test
    base, broken = _break_then_fix(shop, "apps/alpha")
    git(tmp_path, "clone", "-q", "--bare", str(shop), str(servers / "shop.git"))
    _deploy_as_documented(env, tmp_path, "pipeline-from-git-for-shop", servers)
    _, report = _ci_on_a_worker_without_checkout(env, tmp_path, "pipeline-from-git-for-shop", shop)
    assert (report["base_commit"], report["head_commit"]) == (base, broken)
    assert _tested_clone(report, broken).name == "under-test"
