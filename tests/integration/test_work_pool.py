"""Nodes as flow runs on a work pool (``execution: work-pool``): three process workers on this machine,
each with its own TESTPILOT_HOME (and PREFECT_HOME) and its own clone of the repository under test,
made by the node itself from the repository's origin. Nothing is shared on disk: a node's results
come back to the pipeline as its ``testpilot-shard`` artifact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun

from testpilot.nodes import SHARD_KEY, result_from_markdown
from tests.conftest import REPO, commit_change, git, init_repo, make_repo
from tests.integration.conftest import PREFECT, api_url, run, shared_prefect_server

pytestmark = [pytest.mark.flows, pytest.mark.slow]

SHARDS = 6


@pytest.fixture(scope="module")
def pool_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real server with the work pool, the pipeline and the node deployment (heartbeats every 30 s, prefect.yaml)."""
    folder = tmp_path_factory.mktemp("work-pool")
    with shared_prefect_server(folder / "server") as url, api_url(url):
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_CLI_PROMPT": "false"}
        setup = run([sys.executable, "-m", "deployments.setup"], env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        deploy = run([*PREFECT, "--no-prompt", "deploy", "--name", "pipeline", "--name", "node"], env)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        yield env


def _origin(tmp: Path, delay: float, tests_per_shard: int = 2, node_deployment: str = "") -> tuple[Path, Path]:
    """The repository under test ("the git server") and the CI checkout the pipeline is pointed at."""
    origin = tmp / "origin"
    tests = origin / "apps" / "sleepy" / "tests"
    tests.mkdir(parents=True)
    (origin / "testpilot.yaml").write_text(
        "name: sleepy\n"
        "execution: work-pool\n"
        + (f"node_deployment: {node_deployment}\n" if node_deployment else "") +
        f"apps:\n  sleepy: {{path: apps/sleepy, test_command: 'pytest -p no:cacheprovider {{tests}}', shards: {SHARDS}}}\n"
        "environments:\n  local: {provider: local, pool_size: 1, acquire_timeout: 300}\n")
    (origin / "apps" / "sleepy" / "requirements.txt").write_text("pytest\n")
    for i in range(SHARDS):
        body = "import time\n\n" + "".join(f"\ndef test_{i}_{j}():\n    time.sleep({delay})\n"
                                            for j in range(tests_per_shard))
        (tests / f"test_s{i}.py").write_text(body)
    init_repo(origin, "sleepy suite")
    checkout = tmp / "ci-checkout"
    git(tmp, "clone", "-q", str(origin), str(checkout))
    return origin, checkout


@contextmanager
def _workers(env: dict[str, str], tmp: Path, names: tuple[str, ...] = ("w1", "w2", "w3")
             ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Process workers, each with its own homes, polling every second, at most two runs at a time."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with ExitStack() as stack:
        for name in names:
            home = tmp / f"home-{name}"
            home.mkdir()
            log = stack.enter_context(open(tmp / f"worker-{name}.log", "w"))
            procs[name] = subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", "testpilot-process", "--limit", "2", "--name", name],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**env, "TESTPILOT_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
                     "TESTPILOT_WORKER_HOST": f"host-{name}", "TESTPILOT_ZOMBIE_AFTER": "65",
                     "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "1",
                     "PREFECT_WORKER_PREFETCH_SECONDS": "5"})
        try:
            yield procs
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    _kill_tree(proc.pid, signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    _kill_tree(proc.pid, signal.SIGKILL)
                    proc.wait()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += tree.get(p, [])
    return out


def _kill_tree(pid: int, sig: signal.Signals) -> None:
    for p in _descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _start_pipeline(checkout: Path, results: Path) -> FlowRun:
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("testpilot-pipeline/pipeline")
        return client.create_flow_run_from_deployment(dep.id, parameters={
            "suite": str(checkout / "testpilot.yaml"), "head": "HEAD", "full": True, "max_parallel": SHARDS,
            "results_dir": str(results)})


def _wait(run_id: UUID, timeout: float, logs: Path) -> FlowRun:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state and run.state.is_final():
                return run
            assert time.monotonic() < deadline, _tails(logs)
            time.sleep(2)


def _tails(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(folder.glob("worker-*.log")))


def _node_runs(pipeline_id: UUID, children: bool = False) -> list[FlowRun]:
    """The node flow runs of the pipeline run (by its tag); ``children``: check each is its child run."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["testpilot-node"])),
                                     flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(
                                         all_=[f"testpilot-run-{pipeline_id}"])))
        for r in runs if children else []:
            assert r.parent_task_run_id and client.read_task_run(r.parent_task_run_id).flow_run_id == pipeline_id
    return runs


def _published(run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return [a.key or "" for a in arts] + [str(a.data) for a in arts if a.key == SHARD_KEY]


def _report(results: Path) -> tuple[dict, ET.Element]:
    [report] = results.glob("*/report.json")
    return json.loads(report.read_text()), ET.parse(report.with_name("junit.xml")).getroot()


def test_six_shards_run_on_three_workers_each_with_its_own_home_and_clone(pool_env, tmp_path):
    origin, checkout = _origin(tmp_path, delay=4)
    homes = {name: tmp_path / f"home-{name}" for name in ("w1", "w2", "w3")}
    with _workers(pool_env, tmp_path):
        started = _start_pipeline(checkout, tmp_path / "results")
        pipeline = _wait(started.id, 600, tmp_path)
    assert pipeline.state and pipeline.state.is_completed(), f"{pipeline.state}\n{_tails(tmp_path)}"
    nodes = _node_runs(pipeline.id, children=True)  # child runs of the pipeline run
    assert len(nodes) == SHARDS and all(r.state and r.state.is_completed() for r in nodes), nodes
    ran_on = {}
    for r in nodes:
        keys = _published(r.id)
        assert SHARD_KEY in keys, keys
        result = result_from_markdown(keys[-1])
        ran_on[result.shard.shard] = result.worker
        assert [t.outcome for t in result.shard.results] == ["passed", "passed"]
    assert {Path(w.home) for w in ran_on.values()} == set(homes.values()), ran_on  # every worker ran a node
    for name, home in homes.items():  # each worker made its own clone, from origin, and used it
        [clone] = [c for c in (home / "clones").iterdir() if (c / ".git").is_dir()]
        assert git(clone, "remote", "get-url", "origin").strip() == str(origin), name
        assert all(w.clone == str(clone) for w in ran_on.values() if Path(w.home) == home)
    report, junit = _report(tmp_path / "results")
    assert len(report["results"]) == 2 * SHARDS and all(r["outcome"] == "passed" for r in report["results"])
    assert junit.get("tests") == str(2 * SHARDS) or sum(int(s.get("tests", 0)) for s in junit.iter("testsuite")) \
        == 2 * SHARDS, ET.tostring(junit)[:500]
    keys = _published(pipeline.id)
    assert "testpilot-summary" in keys, keys


def test_nodes_of_the_direct_command_deployment_run_as_one_process_each(pool_env, tmp_path):
    """`python -m deployments.nodes` deploys the node flow with ``command`` set to this interpreter's
    `-m prefect.engine`: the worker starts each node's flow-run process itself, with no workspace
    supervisor process before it, and the run is as complete as through `node`."""
    done = run([sys.executable, "-m", "deployments.nodes", "--name", "node-direct"], pool_env)
    assert done.returncode == 0 and "testpilot-node/node-direct" in done.stdout, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("testpilot-node/node-direct")
    assert deployment.job_variables["command"] == f"{sys.executable} -m prefect.engine"
    assert deployment.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"  # kept from prefect.yaml
    _, checkout = _origin(tmp_path, delay=0.2, node_deployment="testpilot-node/node-direct")
    seen: dict[int, set[str]] = {}  # the worker's child processes: what each ran (sampled during the run)
    with _workers(pool_env, tmp_path, names=("w1",)) as procs:
        started = _start_pipeline(checkout, tmp_path / "results")
        deadline = time.monotonic() + 600
        with get_client(sync_client=True) as client:
            while not ((pipeline := client.read_flow_run(started.id)).state and pipeline.state.is_final()):
                assert time.monotonic() < deadline, _tails(tmp_path)
                for child in _children().get(procs["w1"].pid, []):
                    seen.setdefault(child, set()).add(_flow_run_of(child) + " " + " ".join(_cmdline(child)))
                time.sleep(0.2)
    assert pipeline.state and pipeline.state.is_completed(), f"{pipeline.state}\n{_tails(tmp_path)}"
    nodes = _node_runs(pipeline.id)
    assert len(nodes) == SHARDS and {r.deployment_id for r in nodes} == {deployment.id}
    # A run of a deployment without `command` (the pipeline) starts as the workspace supervisor, which
    # then execs the engine in the same process; every node's process ran the engine only.
    runs = {str(r.id) for r in nodes}
    node_processes = [what for what in seen.values() if any(line.split(" ", 1)[0] in runs for line in what)]
    assert len(node_processes) == SHARDS, seen
    assert all(any("prefect.engine" in line for line in what) for what in node_processes), node_processes
    assert not any("_workspace_supervisor" in line for what in node_processes for line in what), node_processes
    assert any("_workspace_supervisor" in line for what in seen.values() for line in what), seen  # the control
    report, _junit = _report(tmp_path / "results")
    assert len(report["results"]) == 2 * SHARDS and all(r["outcome"] == "passed" for r in report["results"])


def _flow_run_of(pid: int) -> str:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return next((v.split("=", 1)[1] for v in environ if v.startswith("PREFECT__FLOW_RUN_ID=")), "?")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def test_a_worker_killed_mid_node_still_reports_every_test(pool_env, tmp_path):
    """SIGKILL to one worker and everything it started while its node runs: the node run goes silent,
    is marked Crashed and runs again on another worker; the run reports all its tests."""
    origin, checkout = _origin(tmp_path, delay=10)
    with _workers(pool_env, tmp_path) as workers:
        started = _start_pipeline(checkout, tmp_path / "results")
        victim, killed_run = _kill_a_node_worker(started.id, workers, tmp_path)
        pipeline = _wait(started.id, 600, tmp_path)
    assert pipeline.state and pipeline.state.is_final(), _tails(tmp_path)
    nodes = _node_runs(pipeline.id)
    crashed = [r for r in nodes if r.id == killed_run]
    assert crashed and crashed[0].state and crashed[0].state.name == "Crashed", (crashed, victim)
    assert "heartbeat" in (crashed[0].state.message or "")
    assert crashed[0].name.endswith("(attempt 1)")
    retried = [r for r in nodes if r.name == crashed[0].name.replace("(attempt 1)", "(attempt 2)")]
    assert retried, [r.name for r in nodes]
    report, _junit = _report(tmp_path / "results")
    assert len(report["results"]) == 2 * SHARDS, report["results"]  # every test reported, none lost
    outcomes = {r["outcome"] for r in report["results"]}
    assert outcomes <= {"passed", "error"}, outcomes
    if retried[0].state and retried[0].state.is_completed():  # ran again elsewhere: every test passed
        assert pipeline.state.is_completed() and outcomes == {"passed"}, pipeline.state
        result = result_from_markdown(_published(retried[0].id)[-1])
        assert Path(result.worker.home).name != f"home-{victim}"


def _kill_a_node_worker(pipeline_id: UUID, workers: dict[str, subprocess.Popen[bytes]], tmp: Path
                        ) -> tuple[str, UUID]:
    """Once a node runs on a worker that does not run the pipeline itself, SIGKILL that worker's tree."""
    deadline = time.monotonic() + 300
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            pipeline = client.read_flow_run(pipeline_id)
            owner = {name: _descendants(p.pid) for name, p in workers.items()}
            holder = _holder(pipeline, owner)
            for node in _node_runs(pipeline_id):
                where = _holder(node, owner)
                if node.state and node.state.is_running() and where and holder and where != holder:
                    time.sleep(3)  # in the middle of its tests
                    _kill_tree(workers[where].pid, signal.SIGKILL)
                    return where, node.id
            time.sleep(1)
    raise AssertionError("no node ran on a worker other than the pipeline's\n" + _tails(tmp))


def _holder(run: FlowRun, owner: dict[str, list[int]]) -> str:
    pid = (run.infrastructure_pid or "").rsplit(":", 1)[-1]
    return next((name for name, pids in owner.items() if pid.isdigit() and int(pid) in pids), "")



def test_cancelling_the_pipeline_cancels_its_node_runs(pool_env, tmp_path):
    origin, checkout = _origin(tmp_path, delay=60)
    with _workers(pool_env, tmp_path):
        started = _start_pipeline(checkout, tmp_path / "results")
        deadline = time.monotonic() + 300
        while not any(r.state and r.state.is_running() for r in _node_runs(started.id)):
            assert time.monotonic() < deadline, _tails(tmp_path)
            time.sleep(1)
        cancel = run([*PREFECT, "flow-run", "cancel", str(started.id)], pool_env)
        assert cancel.returncode == 0, cancel.stdout + cancel.stderr
        pipeline = _wait(started.id, 300, tmp_path)
        deadline = time.monotonic() + 180
        nodes = _node_runs(started.id)
        while not all(r.state and r.state.is_final() for r in nodes):
            assert time.monotonic() < deadline, [(r.name, r.state) for r in nodes]
            time.sleep(2)
            nodes = _node_runs(started.id)
    assert pipeline.state and pipeline.state.is_cancelled(), pipeline.state
    assert nodes and all(r.state and r.state.is_cancelled() for r in nodes), [(r.name, r.state) for r in nodes]


def test_graph_order_skips_data_and_services_behave_as_with_threads(pool_env, tmp_path):
    """The minisuite (sqlite service, seeded data, beta depends on alpha) on the pool: alpha fails, so
    beta's nodes are Skipped naming it and start no flow run; gamma runs; every test is reported."""
    repo = make_repo(tmp_path)
    suite = repo / "testpilot.yaml"
    suite.write_text("execution: work-pool\n" + suite.read_text())
    git(repo, "commit", "-qam", "nodes on the work pool")
    commit_change(repo, "apps/alpha/src/alpha/names.py", '"-".join', '"_".join')
    checkout = tmp_path / "ci-checkout"
    git(tmp_path, "clone", "-q", str(repo), str(checkout))
    with _workers(pool_env, tmp_path, ("w1", "w2")):
        started = _start_pipeline(checkout, tmp_path / "results")
        pipeline = _wait(started.id, 600, tmp_path)
    assert pipeline.state and pipeline.state.is_failed(), pipeline.state
    ran = sorted(r.name.split(" @ ")[0] for r in _node_runs(pipeline.id))
    assert ran == ["app:alpha#0", "app:gamma#0"], ran  # beta's two shards waited for alpha, then were skipped
    report, junit = _report(tmp_path / "results")
    nodes = report["nodes"]
    assert sorted(n for n, v in nodes.items() if v["state"] == "Skipped") == ["app:beta#0", "app:beta#1"], nodes
    assert all("alpha" in nodes[n]["reason"] for n in ("app:beta#0", "app:beta#1")), nodes
    by_app: dict[str, set[str]] = {}
    for r in report["results"]:
        by_app.setdefault(r["app"], set()).add(r["outcome"])
    assert "failed" in by_app["alpha"] and by_app["beta"] == {"skipped"} and by_app["gamma"] == {"passed"}, by_app
    assert "<failure" in ET.tostring(junit, encoding="unicode")
