"""Nodes on a work pool, the plain parts: config, the request/result (de)serialisation, the worker's clone."""

from pathlib import Path

import pytest

from testpilot.environments.base import Environment
from testpilot.errors import ConfigError, GitError
from testpilot.nodes import (
    NodeRequest,
    NodeResult,
    WorkerInfo,
    clone_folder,
    ensure_clone,
    node_parameters,
    origin_of,
    parse_request,
    result_from_markdown,
    result_markdown,
)
from testpilot.results import ShardResult, TestResult
from testpilot.source import prepare_source
from testpilot.suite import parse_suite
from tests.conftest import app_repo, git

APPS = {"a": {"path": ".", "test_command": "pytest {tests}", "environment": "remote"},
        "b": {"path": ".", "test_command": "pytest {tests}"}}


def test_execution_environment_overrides_suite():
    suite = parse_suite({"apps": APPS, "execution": "work-pool",
                         "environments": {"local": {}, "remote": {"execution": "threads", "node_deployment": "f/d"}}})
    assert suite.execution_of("a") == "threads" and suite.execution_of("b") == "work-pool"
    assert suite.node_deployment_of("a") == "f/d" and suite.node_deployment_of("b") == "testpilot-node/node"
    default = parse_suite({"apps": APPS, "environments": {"local": {}, "remote": {"execution": "work-pool"}}})
    assert default.execution_of("a") == "work-pool" and default.execution_of("b") == "threads"


@pytest.mark.parametrize(("extra", "field"), [
    ({"execution": "pool"}, "execution"),
    ({"node_deployment": "node"}, "node_deployment"),
    ({"environments": {"local": {}, "remote": {"execution": "processes"}}}, "environments.remote.execution"),
    ({"environments": {"local": {}, "remote": {"node_deployment": "a/b/c"}}}, "environments.remote.node_deployment"),
])
def test_bad_execution_config_names_the_field(extra, field):
    data = {"apps": APPS, "environments": {"local": {}, "remote": {}}, **extra}
    with pytest.raises(ConfigError) as err:
        parse_suite(data)
    assert err.value.field == field


def _request() -> NodeRequest:
    env = Environment(id="ssh-0", pool="ssh", provider="ssh", transport="ssh", workdir="/srv/t")
    return NodeRequest(repo="https://git.example/r.git", commit="a" * 40, suite="testpilot.yaml", node="app[1]",
                       app="app", shard=1, tests=["t::a", "t::b"], pool="ssh", slot=2, env=env, run_id="r")


def test_request_round_trips_through_deployment_parameters():
    request = _request()
    params = node_parameters(request)
    assert list(params) == ["request"] and params["request"]["env"]["transport"] == "ssh"
    assert parse_request(params["request"]) == request
    with pytest.raises(ValueError):
        parse_request({"repo": "x"})


def test_result_round_trips_through_the_artifact():
    shard = ShardResult(app="app", shard=1, tests=["t::a", "t::b"], results=[
        TestResult(app="app", node_id="t::a", outcome="passed"),
        TestResult(app="app", node_id="t::b", outcome="failed", message="```json\nnot the block\n```")])
    result = NodeResult(shard=shard, worker=WorkerInfo(host="h", pid=3, home="/home/w1", clone="/home/w1/c"))
    text = result_markdown(result)
    assert text.startswith("**app[1]**: 2 result(s), 1 failed")
    back = result_from_markdown(text)
    assert back == result and len(back.shard.failures) == 1
    with pytest.raises(ValueError, match="no JSON result"):
        result_from_markdown("just text")


def test_worker_clones_from_origin_and_materialises_the_commit(tmp_path):
    origin = app_repo(tmp_path / "origin")
    pipeline_clone = tmp_path / "pipeline"
    git(tmp_path, "clone", "-q", str(origin), str(pipeline_clone))
    assert origin_of(pipeline_clone) == str(origin)
    assert origin_of(origin) == str(origin)  # no origin remote: the folder itself
    first = git(origin, "rev-parse", "HEAD").strip()

    clones = tmp_path / "worker-home" / "clones"
    clone = ensure_clone(str(origin), clones)
    assert clone == clone_folder(clones, str(origin)) and clone.name.startswith("origin-")
    assert ensure_clone(str(origin), clones) == clone  # made once
    (origin / "app" / "code.py").write_text("VALUE = 2\n")
    git(origin, "commit", "-q", "-am", "two")
    second = git(origin, "rev-parse", "HEAD").strip()
    tree = prepare_source(clone / "testpilot.yaml", second, tmp_path / "tree", repo=str(clone))  # fetched
    assert tree.commit == second and (Path(tree.root) / "app" / "code.py").read_text() == "VALUE = 2\n"
    old = prepare_source(clone / "testpilot.yaml", first, tmp_path / "old", repo=str(clone))
    assert (Path(old.root) / "app" / "code.py").read_text() == "VALUE = 1\n"

    with pytest.raises(GitError, match="cannot clone") as err:
        ensure_clone(str(tmp_path / "missing"), clones)
    assert err.value.field == "request.repo"
    with pytest.raises(ConfigError, match="no repository"):
        ensure_clone("", clones)


def test_a_lost_node_reports_every_test_it_owed_as_lost_infrastructure():
    from testpilot.execution.local import CommandResult
    from testpilot.execution.outcome import lost_to_infrastructure, run_verdict, shard_result

    lost = shard_result(app="app", shard=1, tests=["t::a", "t::b"], results=[],
                        outcome=CommandResult(aborted="NodeLost: node run x sent no heartbeat for 90s"),
                        environment="", host="")
    assert {r.node_id for r in lost.results} >= {"t::a", "t::b"} and all(r.failed for r in lost.results)
    assert lost_to_infrastructure([lost]) == [lost]
    error = run_verdict([lost], failed=2, total=2, results_dir="/r")
    assert error is not None and error.exit_code == 3 and "NodeLost" in str(error)
