"""Run one shard of an app's tests in an environment, streaming output into the task-run log."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Failed, State

from tasks.common import TASK_DEFAULTS, quiet_empty_tracebacks, suite_at
from tasks.environments import connection
from tasks.records import keep_record
from testpilot.environments.base import Environment
from testpilot.errors import InfrastructureError
from testpilot.execution.monitor import StreamMonitor
from testpilot.execution.runner import LocalRunner, RemoteRunner, command_variables
from testpilot.execution.shard import ShardOutput, lost_shard, run_job, shard_job
from testpilot.results import ShardResult
from testpilot.run_report import not_run_results
from testpilot.settings import get_settings

quiet_empty_tracebacks()  # a shard that returns Failed is a verdict: no bare 'NoneType: None' line

_PASS_THROUGH = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER")


def command_env(env: Environment, app: str, extra: dict[str, str]) -> dict[str, str]:
    """The test command's environment here: a small allow-list of ours, never the worker's secrets."""
    return command_variables(env, app, extra, inherited=_inherited(), path=os.environ.get("PATH", "/usr/bin:/bin"))


def skipped(reason: str, data: ShardResult) -> State[ShardResult]:
    """Prefect 3 has no Skipped state. A Cancelled-type state named Skipped: the graph draws it grey, not
    green (a node that did not run is not a pass), and the flow's own returned state decides the run."""
    return State(type=StateType.CANCELLED, name="Skipped", message=reason, data=data)


@task(name="run-node", task_run_name="{node}", **TASK_DEFAULTS)
def run_node(suite_path: str, node: str, app: str, shard: int, tests: list[str], env: Environment | None,
             skip: str = "", cancel: str = "") -> ShardResult | State[ShardResult]:
    """One executable graph node: run a shard, or record why it did not run."""
    if skip or cancel or env is None:
        empty = ShardResult(app=app, shard=shard, tests=tests,
                            results=not_run_results(app, shard, tests, cancel or skip or "no environment"))
        return Cancelled(message=cancel, data=empty) if cancel else skipped(skip or "no environment", empty)
    try:
        result = run_shard.fn(suite_path, app, shard, tests, env)
    except Exception as exc:  # noqa: BLE001 - a node that crashed still reports every test it owed
        get_run_logger().error("%s[%d] could not run on %s: %s", app, shard, env.host, exc)
        result = lost_shard(app, shard, tests, f"{type(exc).__name__}: {getattr(exc, 'message', str(exc))}", env)
        result.dirty = isinstance(exc, InfrastructureError)
    failed = len(result.failures)
    if not result.ok:
        return Failed(message=f"{failed} of {len(result.results)} test(s) failed", data=result)
    return result


@task(name="run-shard", task_run_name="{app}[{shard}]", **TASK_DEFAULTS)
def run_shard(suite_path: str, app: str, shard: int, tests: list[str], env: Environment) -> ShardResult:
    """Run a shard where its environment is (here or over SSH), then re-run its failures for flakiness."""
    logger, suite = get_run_logger(), suite_at(suite_path)
    config = suite.apps[app]
    output = ShardOutput(lambda block: logger.info("%s", block), logger,
                         progress_artifact(f"{app}[{shard}] on {env.id}"), env.host)
    job = shard_job(env, app, shard, tests, test_command=config.test_command, timeout=config.timeout,
                    app_env=config.env, inherited=_inherited(), passed=_passed(),
                    local_path=os.environ.get("PATH", "/usr/bin:/bin"),
                    scratch=lambda: Path(tempfile.mkdtemp(prefix="testpilot-junit-")))
    monitor = StreamMonitor.from_config(suite.environments[env.pool].monitor
                                        if env.pool in suite.environments else None)
    streams: dict[str, Any] = {"on_line": output.on_line, "monitor": monitor, "on_event": output.on_event}
    runner = RemoteRunner(connection(suite_path, env), **streams) if job.remote else LocalRunner(**streams)
    return run_job(job, runner, output, reruns=suite.failures.reruns, log=logger,
                   keep_record=lambda run, path, scratch: keep_record(run, path, scratch, suite, app, shard, logger))


def progress_artifact(description: str) -> Callable[[float], None]:
    """Progress updates to a progress artifact, created at the first one."""
    made: list[UUID] = []

    def update(percent: float) -> None:
        if not made:
            made.append(create_progress_artifact(progress=0.0, description=description))  # type: ignore[arg-type]
        update_progress_artifact(artifact_id=made[0], progress=percent)

    return update


def _inherited() -> dict[str, str]:
    return {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ} | _passed()


def _passed() -> dict[str, str]:
    names = (n.strip() for n in get_settings().pass_env.split(",") if n.strip())
    return {n: os.environ[n] for n in names if n in os.environ}
