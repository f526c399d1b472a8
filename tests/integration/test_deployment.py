"""The deployment path on a real `prefect server start`: `deployments.setup`, `prefect deploy --all`
from the repository root, process workers, `prefect deployment run --watch` and schedules."""

import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from pydantic import SecretStr

from blocks.environments import SSHMachine
from tests.conftest import REPO, commit_change, git, make_repo
from tests.integration.conftest import PREFECT, free_port, run, worker

pytestmark = [pytest.mark.flows, pytest.mark.slow]


def test_deploy_worker_and_watch(deployed, tmp_path):
    env = deployed
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("testpilot-pipeline/nightly-regression")
        assert nightly.schedules and nightly.schedules[0].schedule.cron == "0 2 * * *"
        assert nightly.parameters["full"] is True
        reaper = client.read_deployment_by_name("testpilot-reaper/reaper")
        assert reaper.schedules and reaper.schedules[0].schedule.interval.total_seconds() == 300
        pipeline = client.read_deployment_by_name("testpilot-pipeline/pipeline")
        assert pipeline.global_concurrency_limit and pipeline.global_concurrency_limit.limit >= 1
        form = client.read_deployment_by_name("testpilot-triage/triage").parameter_openapi_schema["properties"]
        assert form["status"]["enum"] == ["open", "known", "flaky"] and "cluster" in form

    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join')
    with worker(env, tmp_path / "worker.log"):
        watched = run([*PREFECT, "deployment", "run", "testpilot-pipeline/pipeline", "--watch",
                       "-p", f"suite={repo / 'testpilot.yaml'}", "-p", "base=HEAD~1", "-p", "head=HEAD",
                       "-p", f"results_dir={tmp_path / 'results'}"], env, timeout=400)
    assert watched.returncode == 0, watched.stdout + watched.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert "Completed" in watched.stdout
    [report] = Path(tmp_path / "results").glob("*/report.json")
    assert '"tests/test_names.py"' in report.read_text()


def _runs(deployment_id) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def test_schedule_creates_runs_that_a_worker_completes(deployed, tmp_path):
    """The scheduler service (not a manual trigger) creates the runs; a process worker completes them."""
    env = deployed
    with get_client(sync_client=True) as client:
        reaper = client.read_deployment_by_name("testpilot-reaper/reaper")
    with worker(env, tmp_path / "worker.log"):
        try:  # the worker polls first, so runs are taken as they fall due, not as a backlog
            fast = run([*PREFECT, "--no-prompt", "deploy", "--name", "reaper", "--interval", "10"], env)
            assert fast.returncode == 0, fast.stdout + fast.stderr
            deadline = time.monotonic() + 420
            while True:
                scheduled = [r for r in _runs(reaper.id) if r.auto_scheduled]
                done = [r for r in scheduled if r.state and r.state.is_completed()]
                if done and len(scheduled) >= 2:
                    break
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                time.sleep(2)
        finally:  # back to the schedule from prefect.yaml; drop the runs the fast schedule left
            restore = run([*PREFECT, "--no-prompt", "deploy", "--name", "reaper"], env)
            assert restore.returncode == 0, restore.stdout + restore.stderr
            with get_client(sync_client=True) as client:
                for r in _runs(reaper.id):
                    if r.state and r.state.is_scheduled():
                        client.delete_flow_run(r.id)
                restored = client.read_deployment_by_name("testpilot-reaper/reaper")
    assert [s.schedule.interval.total_seconds() for s in restored.schedules] == [300]
    assert all(r.created_by is None or r.created_by.type != "USER" for r in done)
    log = (tmp_path / "worker.log").read_text()
    assert all(str(r.id) in log for r in done), "the runs were not executed by this worker"


def _ci(env: dict[str, str], results: Path, *params: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "flows.cli", "ci", "--json", "--results", str(results), "--timeout", "500"]
    for param in params:
        argv += ["-p", param]
    return subprocess.Popen(argv, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ci_exit_codes_and_results_through_the_deployment(deployed, tmp_path):
    """0 passing change, 1 failing change, 2 bad ref, 3 unreachable SSH host; junit.xml downloaded each time."""
    env = deployed
    passing = make_repo(tmp_path / "pass")
    commit_change(passing, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join')
    failing = make_repo(tmp_path / "fail")
    commit_change(failing, "apps/alpha/src/alpha/names.py", '"-".join', '"_".join')
    unreachable = make_repo(tmp_path / "down")
    suite = unreachable / "testpilot.yaml"
    suite.write_text(suite.read_text().replace(
        "local: {provider: local, pool_size: 1, acquire_timeout: 120, services: {db: {type: sqlite}}}",
        "lab: {provider: ssh, pool_size: 1, acquire_timeout: 60, settings: {machines: [ci-closed-box]}}"))
    git(unreachable, "commit", "-qam", "run on an SSH machine")
    commit_change(unreachable, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join')
    SSHMachine(host="127.0.0.1", port=free_port(), user="nobody", password=SecretStr("x"),
               trust_on_first_use=True).save("ci-closed-box", overwrite=True)
    cases = {"pass": (passing, "base=HEAD~1", 0), "fail": (failing, "base=HEAD~1", 1),
             "bad-ref": (passing, "base=no-such-ref", 2), "down": (unreachable, "base=HEAD~1", 3)}
    with worker(env, tmp_path / "worker.log", "--limit", "4"):
        procs = {name: _ci(env, tmp_path / name, f"suite={repo / 'testpilot.yaml'}", base, "head=HEAD")
                 for name, (repo, base, _) in cases.items()}
        finished = {name: (proc.communicate(timeout=600), proc.returncode) for name, proc in procs.items()}
    for name, ((out, err), code) in finished.items():
        context = f"{name}: exit {code}\n{err}\n{out}"
        assert code == cases[name][2], context + (tmp_path / "worker.log").read_text()[-3000:]
        summary = json.loads(out)
        assert summary["exit_code"] == code and summary["state"] in ("Completed", "Failed"), context
        assert "<testsuite" in (tmp_path / name / "junit.xml").read_text(), context
        assert Path(summary["files"]["junit"]) == tmp_path / name / "junit.xml", context
        assert "run " in err and "Traceback" not in err, context  # the readable log: state changes
    assert 'name="test_slug"' in (tmp_path / "pass" / "junit.xml").read_text()
    assert json.loads((tmp_path / "pass" / "report.json").read_text())["results"]
    fail_out, fail_err = finished["fail"][0]
    assert json.loads(fail_out)["failing"] == [{"app": "alpha", "test": "tests/test_names.py::test_slug",
                                                 "owner": "alpha-team", "category": ANY, "message": ANY}]
    assert "tests/test_names.py::test_slug  owner: alpha-team" in fail_err
    assert "<failure" in (tmp_path / "fail" / "junit.xml").read_text()
    assert "unknown git ref 'no-such-ref'" in json.loads(finished["bad-ref"][0][0])["message"]
    down = json.loads(finished["down"][0][0])
    assert "127.0.0.1" in down["message"], f"{down}\n" + (tmp_path / "worker.log").read_text()[-6000:]
    assert "<error" in (tmp_path / "down" / "junit.xml").read_text()
    worker_log = (tmp_path / "worker.log").read_text()
    assert all(json.loads(out)["flow_run_id"] in worker_log for (out, _), _ in finished.values())


def test_two_workers_each_with_its_own_home_and_clone_share_five_runs(deployed, tmp_path):
    """Each worker takes at most `--limit 2` runs, so neither takes all five. The deployment's pull step
    reads TESTPILOT_CHECKOUT on the worker, so each runs the flows from its own clone, and each local
    pool lock is per host (TESTPILOT_WORKER_HOST stands in for two machines)."""
    env = deployed
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [pipeline] = [d for d in config["deployments"] if d["name"] == "pipeline"]
    pipeline.update(name="two-workers", pull=[{"prefect.deployments.steps.set_working_directory":
                                               {"directory": "{{ $TESTPILOT_CHECKOUT }}"}}])
    config["deployments"] = [pipeline]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config))
    deploy = run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")],
                 {k: v for k, v in env.items() if k != "TESTPILOT_CHECKOUT"})
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/names.py", '"-".join', '"-" .join')
    suite = repo / "testpilot.yaml"
    suite.write_text(suite.read_text().replace("acquire_timeout: 120", "acquire_timeout: 600"))
    git(repo, "commit", "-qam", "wait longer for the lock")
    homes = {}
    with ExitStack() as stack:
        for name in ("a", "b"):
            clone = tmp_path / f"clone-{name}"
            git(tmp_path, "clone", "-q", str(REPO), str(clone))
            homes[name] = (clone, tmp_path / f"home-{name}")
            stack.enter_context(worker({**env, "TESTPILOT_CHECKOUT": str(clone), "TESTPILOT_HOME": str(homes[name][1]),
                                        "TESTPILOT_WORKER_HOST": f"host-{name}"}, tmp_path / f"worker-{name}.log",
                                       "--limit", "2", cwd=clone))
        procs = [subprocess.Popen([*PREFECT, "deployment", "run", "testpilot-pipeline/two-workers", "--watch",
                                   "-p", f"suite={suite}", "-p", "base=HEAD~2", "-p", "head=HEAD"],
                                  cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                  for _ in range(5)]
        outputs = [(p.communicate(timeout=900)[0], p.returncode) for p in procs]
    assert all(code == 0 for _, code in outputs), outputs
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("testpilot-pipeline/two-workers")
        runs = _runs(dep.id)
        limits = {lim.name for lim in client.read_global_concurrency_limits(limit=200)}
    assert len(runs) == 5 and all(r.state and r.state.is_completed() for r in runs)
    # Who executed a run shows in where its results landed: the worker's own clone (the run's working
    # directory) or home. Worker logs are no proof: both workers log runs they tried and lost to the other.
    executed = {name: {str(r.id) for r in runs if any(next(root.rglob(f"{r.id}/report.json"), None)
                                                      for root in homes[name])} for name in homes}
    assert executed["a"] and executed["b"] and not executed["a"] & executed["b"], executed
    assert len(executed["a"] | executed["b"]) == 5, executed
    assert {"testpilot-pool-local-on-host-a", "testpilot-pool-local-on-host-b"} <= limits, limits
