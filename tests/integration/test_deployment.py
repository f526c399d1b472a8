"""`prefect deploy` from the repo root, a real process worker, and `prefect deployment run --watch`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from tests.conftest import REPO, commit_change, make_repo

pytestmark = [pytest.mark.flows, pytest.mark.slow]
PREFECT = [sys.executable, "-m", "prefect"]


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_deploy_worker_and_watch(prefect_api, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_CLI_PROMPT": "false"}
    for _ in range(2):  # the setup script is idempotent
        setup = run([sys.executable, "-m", "deployments.setup"], env)
        assert setup.returncode == 0, setup.stderr
    assert "already there" in setup.stdout
    deploy = run([*PREFECT, "--no-prompt", "deploy", "--all"], env)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("testpilot-pipeline/nightly-regression")
        assert nightly.schedules and nightly.schedules[0].schedule.cron == "0 2 * * *"
        assert nightly.parameters["full"] is True
        reaper = client.read_deployment_by_name("testpilot-reaper/reaper")
        assert reaper.schedules and reaper.schedules[0].schedule.interval.total_seconds() == 900

    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join')
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", "testpilot-process"], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        watched = run([*PREFECT, "deployment", "run", "testpilot-pipeline/pipeline", "--watch",
                       "-p", f"suite={repo / 'testpilot.yaml'}", "-p", "base=HEAD~1", "-p", "head=HEAD",
                       "-p", f"results_dir={tmp_path / 'results'}"], env, timeout=400)
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    assert watched.returncode == 0, watched.stdout + watched.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert "Completed" in watched.stdout
    [report] = Path(tmp_path / "results").glob("*/report.json")
    assert '"tests/test_names.py"' in report.read_text()
