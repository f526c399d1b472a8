"""Run one shard of an app's tests in an environment, streaming output into the task-run log."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import get_run_logger, task
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Failed, State

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.environments.base import Environment
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.local import run_local
from testpilot.execution.outcome import shard_result
from testpilot.results import ShardResult
from testpilot.settings import get_settings

_PASS_THROUGH = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER")


def command_env(env: Environment, app: str, extra: dict[str, str]) -> dict[str, str]:
    """The test command's environment: a small allow-list of ours, never the worker's secrets."""
    names = [*_PASS_THROUGH, *(n.strip() for n in get_settings().pass_env.split(",") if n.strip())]
    base = {k: os.environ[k] for k in names if k in os.environ}
    python = env.python.get(app)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if python:
        path = f"{Path(python).parent}{os.pathsep}{path}"
    # Unbuffered, so output streams into the log as it happens rather than in 8 KiB blocks.
    merged = {"PYTHONUNBUFFERED": "1", **base, "PATH": path, **env.env, **extra, "TESTPILOT_APP": app}
    if "PYTHONPATH" in extra and "PYTHONPATH" in env.env:
        merged["PYTHONPATH"] = os.pathsep.join((extra["PYTHONPATH"], env.env["PYTHONPATH"]))
    return merged


def skipped(reason: str, data: ShardResult) -> State[ShardResult]:
    """Prefect 3 has no Skipped state; a Completed-type state named Skipped keeps the run green."""
    return State(type=StateType.COMPLETED, name="Skipped", message=reason, data=data)


@task(name="run-node", task_run_name="{node}", **TASK_DEFAULTS)
def run_node(suite_path: str, node: str, app: str, shard: int, tests: list[str], env: Environment | None,
             skip: str = "", cancel: str = "") -> ShardResult | State[ShardResult]:
    """One executable graph node: run a shard, or record why it did not run."""
    if skip or cancel or env is None:
        empty = ShardResult(app=app, shard=shard, tests=tests)
        return Cancelled(message=cancel, data=empty) if cancel else skipped(skip or "no environment", empty)
    result = run_shard.fn(suite_path, app, shard, tests, env)
    failed = sum(1 for r in result.results if r.failed)
    if not result.ok:
        return Failed(message=f"{failed} of {len(result.results)} test(s) failed", data=result)
    return result


@task(name="run-shard", task_run_name="{app}[{shard}]", **TASK_DEFAULTS)
def run_shard(suite_path: str, app: str, shard: int, tests: list[str], env: Environment) -> ShardResult:
    logger = get_run_logger()
    config = suite_at(suite_path).apps[app]
    junit = Path(env.workdir) / ".testpilot" / f"junit-{app}-{shard}.xml"
    plugin = (Path(env.workdir) / ".testpilot" / "testpilot_pytest.py").exists()
    argv = build_argv(config.test_command, tests=tests, junit=str(junit), app=app,
                      plugins=("testpilot_pytest",) if plugin else ())
    logger.info("running %d test(s) of %s in %s", len(tests), app, env.id)
    outcome = run_local(argv, cwd=str(Path(env.workdir) / app), env=command_env(env, app, config.env),
                        timeout=config.timeout, on_line=lambda _stream, line: logger.info("%s", line))
    results = parse_junit(junit, app=app, shard=shard, environment=env.id, host=env.host)
    return shard_result(app=app, shard=shard, tests=tests, results=results, outcome=outcome,
                        environment=env.id, host=env.host, timeout=config.timeout)
