"""Run one shard of an app's tests in an environment, streaming output into the task-run log."""

from __future__ import annotations

import os
import posixpath
import shutil
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
from tasks.records import keep_record, record_variables
from testpilot.environments.base import Environment
from testpilot.errors import InfrastructureError
from testpilot.execution.batching import LineBatcher
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.local import CommandResult
from testpilot.execution.monitor import Event, StreamMonitor
from testpilot.execution.outcome import StreamedResults, shard_result
from testpilot.execution.runner import LocalRunner, RemoteRunner, Runner, command_variables, remote_env
from testpilot.results import Outcome, ShardResult, TestResult
from testpilot.run_report import not_run_results
from testpilot.settings import get_settings

quiet_empty_tracebacks()  # a shard that returns Failed is a verdict: no bare 'NoneType: None' line

_PASS_THROUGH = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER")


def command_env(env: Environment, app: str, extra: dict[str, str]) -> dict[str, str]:
    """The test command's environment here: a small allow-list of ours, never the worker's secrets."""
    inherited = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ} | _passed()
    return command_variables(env, app, extra, inherited=inherited, path=os.environ.get("PATH", "/usr/bin:/bin"))


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
    logger = get_run_logger()
    suite = suite_at(suite_path)
    config = suite.apps[app]
    monitor = StreamMonitor.from_config(suite.environments[env.pool].monitor
                                        if env.pool in suite.environments else None)
    progress: list[UUID] = []

    def on_event(event: Event) -> None:
        if event.action == "abort":
            logger.error("abort pattern %s matched on %s: %s", event.pattern, env.host, event.line)
        elif event.action == "warn":
            logger.warning("pattern %s matched on %s: %s", event.pattern, env.host, event.line)
        elif event.percent is not None:
            if not progress:
                progress.append(create_progress_artifact(  # type: ignore[arg-type]
                    progress=0.0, description=f"{app}[{shard}] on {env.id}"))
            update_progress_artifact(artifact_id=progress[0], progress=event.percent)

    streamed = StreamedResults()
    batch = LineBatcher(lambda block: logger.info("%s", block))

    def on_line(_stream: str, line: str) -> None:
        shown = streamed.feed(line)
        if shown or shown == line:
            batch.add(shown)

    runner: Runner
    if env.transport == "ssh":
        runner = RemoteRunner(connection(suite_path, env), on_line=on_line, monitor=monitor, on_event=on_event)
        variables = remote_env(env, app, config.env, _passed())
        cwd = posixpath.join(env.workdir, app)
        scratch = Path(tempfile.mkdtemp(prefix="testpilot-junit-"))
    else:
        runner = LocalRunner(on_line=on_line, monitor=monitor, on_event=on_event)
        variables = command_env(env, app, config.env)
        cwd = str(Path(env.workdir) / app)
        scratch = Path(env.workdir) / ".testpilot"
    join = posixpath.join if env.transport == "ssh" else os.path.join
    staged = env.transport == "ssh" or (Path(env.workdir) / ".testpilot" / "testpilot_pytest.py").exists()
    plugin = ("testpilot_pytest",) if staged else ()
    recording = record_variables(env.workdir, app, shard, cwd, join) if plugin else {}

    def execute(selected: list[str], attempt: str) -> tuple[CommandResult, list[TestResult]]:
        junit = join(env.workdir, ".testpilot", f"junit-{app}-{shard}{attempt}.xml")
        argv = build_argv(config.test_command, tests=selected, junit=junit, app=app, plugins=plugin)
        streamed.outcomes.clear()
        extra = {} if attempt else recording  # re-runs would overwrite the shard's record with a few tests
        outcome = runner.run(argv, cwd=cwd, env={**variables, **extra}, timeout=config.timeout)
        local = runner.fetch(junit, scratch)
        where = {"app": app, "shard": shard, "environment": env.id, "host": env.host}
        return outcome, parse_junit(local, **where) or streamed.results(**where)  # type: ignore[arg-type]

    logger.info("running %d test(s) of %s in %s (%s)", len(tests), app, env.id, env.host)
    try:
        outcome, results = execute(tests, "")
        if recording:
            keep_record(runner, recording["TESTPILOT_RECORD"], scratch, suite, app, shard, logger)
        result = shard_result(app=app, shard=shard, tests=tests, results=results, outcome=outcome,
                              environment=env.id, host=env.host, timeout=config.timeout)
        result.reruns = rerun_failures(result, suite.failures.reruns, execute, logger)
    finally:
        batch.close()
        runner.close()
        if env.transport == "ssh":
            shutil.rmtree(scratch, ignore_errors=True)
    result.dirty = runner.dirty
    if result.dirty:
        logger.error("environment %s on %s is marked dirty: it is reset before its next use", env.id, env.host)
    return result


def lost_shard(app: str, shard: int, tests: list[str], why: str, env: Environment | None = None) -> ShardResult:
    """The results of a node that ended without any of its own: every test it owed, as an error saying why."""
    return shard_result(app=app, shard=shard, tests=tests, results=[], outcome=CommandResult(aborted=why),
                        environment=env.id if env else "", host=env.host if env else "")


def rerun_failures(result: ShardResult, budget: int,
                   execute: Callable[[list[str], str], tuple[CommandResult, list[TestResult]]],
                   logger: Any) -> dict[str, list[Outcome]]:
    """Re-run the failed tests up to ``budget`` times; a test stops once it passes (it is then flaky)."""
    if result.aborted or result.timed_out or result.dirty:
        return {}  # the environment failed, not the tests: re-running would only repeat that
    reruns: dict[str, list[Outcome]] = {}
    pending = [r.node_id for r in result.results if r.failed and "::" in r.node_id]
    for attempt in range(1, budget + 1):
        if not pending:
            break
        logger.info("re-running %d failed test(s), attempt %d of %d", len(pending), attempt, budget)
        _outcome, again = execute(pending, f"-rerun{attempt}")
        seen = {r.node_id: r.outcome for r in again}
        for node in pending:
            reruns.setdefault(node, []).append(seen.get(node, "error"))
        pending = [n for n in pending if reruns[n][-1] != "passed"]
    return reruns


def _passed() -> dict[str, str]:
    names = (n.strip() for n in get_settings().pass_env.split(",") if n.strip())
    return {n: os.environ[n] for n in names if n in os.environ}
