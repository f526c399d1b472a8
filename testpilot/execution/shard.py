"""Run one shard where its environment is: the test command, its JUnit file, the per-test record, and
re-runs of what failed. No Prefect here: the task hands in the runner, a logger and where progress goes.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testpilot.environments.base import Environment
from testpilot.execution.batching import LineBatcher
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.local import CommandResult
from testpilot.execution.monitor import Event
from testpilot.execution.outcome import StreamedResults, shard_result
from testpilot.execution.runner import Runner, command_variables, remote_env
from testpilot.results import Outcome, ShardResult, TestResult

Execute = Callable[[list[str], str], tuple[CommandResult, list[TestResult]]]
KeepRecord = Callable[[Runner, str, Path], object]


class ShardOutput:
    """Where a shard's live output goes: per-test outcome markers are picked out (kept for a run whose
    JUnit never comes back), the other lines go to ``emit`` in batches, monitor events to ``log`` or, as
    a percentage, to ``progress``."""

    def __init__(self, emit: Callable[[str], None], log: logging.Logger | logging.LoggerAdapter[Any],
                 progress: Callable[[float], None], host: str) -> None:
        self.streamed, self.log, self.progress, self.host = StreamedResults(), log, progress, host
        self.batch = LineBatcher(emit)

    def on_line(self, _stream: str, line: str) -> None:
        shown = self.streamed.feed(line)
        if shown or shown == line:
            self.batch.add(shown)

    def on_event(self, event: Event) -> None:
        if event.action == "abort":
            self.log.error("abort pattern %s matched on %s: %s", event.pattern, self.host, event.line)
        elif event.action == "warn":
            self.log.warning("pattern %s matched on %s: %s", event.pattern, self.host, event.line)
        elif event.percent is not None:
            self.progress(event.percent)

    def close(self) -> None:
        self.batch.close()


@dataclass
class ShardJob:
    """What one shard runs, and where: ``cwd`` and ``scratch`` (where fetched files land) as the runner
    sees them; ``recording`` holds the variables that make the staged plugin record per-test data."""

    app: str
    shard: int
    tests: list[str]
    env: Environment
    test_command: str
    timeout: float
    variables: dict[str, str]
    cwd: str
    scratch: Path
    plugins: tuple[str, ...] = ()
    recording: dict[str, str] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.env.transport == "ssh"

    def path(self, *parts: str) -> str:
        return (posixpath.join if self.remote else os.path.join)(*parts)


def shard_job(env: Environment, app: str, shard: int, tests: list[str], *, test_command: str,
              timeout: float, app_env: Mapping[str, str], inherited: Mapping[str, str],
              passed: Mapping[str, str], local_path: str, scratch: Callable[[], Path]) -> ShardJob:
    """The job for ``tests`` of ``app`` in ``env``. Locally the command inherits ``inherited`` (an allow-list)
    and ``local_path``; remotely only ``passed`` (what the operator passes on purpose) and the host's PATH.
    ``scratch`` makes the folder a remote run's files are fetched into."""
    remote = env.transport == "ssh"
    job = ShardJob(app=app, shard=shard, tests=tests, env=env, test_command=test_command, timeout=timeout,
                   variables=(remote_env(env, app, app_env, passed) if remote else
                              command_variables(env, app, app_env, inherited=inherited, path=local_path)),
                   cwd="", scratch=scratch() if remote else Path(env.workdir) / ".testpilot")
    job.cwd = job.path(env.workdir, app)
    if remote or (Path(env.workdir) / ".testpilot" / "testpilot_pytest.py").exists():  # the plugin is staged
        job.plugins = ("testpilot_pytest",)
        job.recording = {"TESTPILOT_RECORD": job.path(env.workdir, ".testpilot", f"record-{app}-{shard}.json.gz"),
                         "TESTPILOT_RECORD_ROOT": job.cwd}
    return job


def run_job(job: ShardJob, runner: Runner, output: ShardOutput, *, reruns: int,
            log: logging.Logger | logging.LoggerAdapter[Any], keep_record: KeepRecord | None = None) -> ShardResult:
    """Run the shard, keep its record, re-run its failures up to ``reruns`` times; always closes the runner
    and removes a remote run's scratch folder. A runner left dirty marks the result dirty."""
    where = {"app": job.app, "shard": job.shard, "environment": job.env.id, "host": job.env.host}
    spent: dict[str, float] = {}

    def execute(selected: list[str], attempt: str) -> tuple[CommandResult, list[TestResult]]:
        junit = job.path(job.env.workdir, ".testpilot", f"junit-{job.app}-{job.shard}{attempt}.xml")
        argv = build_argv(job.test_command, tests=selected, junit=junit, app=job.app, plugins=job.plugins)
        output.streamed.outcomes.clear()
        extra = {} if attempt else job.recording  # re-runs would overwrite the shard's record with a few tests
        with timed(spent, "test command"):
            outcome = runner.run(argv, cwd=job.cwd, env={**job.variables, **extra}, timeout=job.timeout)
        with timed(spent, "JUnit fetched"):
            local = runner.fetch(junit, job.scratch)
        return outcome, parse_junit(local, **where) or output.streamed.results(**where)  # type: ignore[arg-type]

    log.info("running %d test(s) of %s in %s (%s)", len(job.tests), job.app, job.env.id, job.env.host)
    try:
        outcome, results = execute(job.tests, "")
        if job.recording and keep_record is not None:
            with timed(spent, "record stored"):
                keep_record(runner, job.recording["TESTPILOT_RECORD"], job.scratch)
        result = shard_result(app=job.app, shard=job.shard, tests=job.tests, results=results, outcome=outcome,
                              environment=job.env.id, host=job.env.host, timeout=job.timeout)
        result.reruns = rerun_failures(result, reruns, execute, log)
    finally:
        output.close()
        runner.close()
        if job.remote:
            shutil.rmtree(job.scratch, ignore_errors=True)
    result.dirty = runner.dirty
    log.info("%s[%d] on %s: %s", job.app, job.shard, job.env.id,
             ", ".join(f"{what} {seconds:.2f} s" for what, seconds in spent.items()))
    if result.dirty:
        log.error("environment %s on %s is marked dirty: it is reset before its next use", job.env.id, job.env.host)
    return result


@contextmanager
def timed(spent: dict[str, float], what: str) -> Iterator[None]:
    """Adds the block's wall seconds to ``spent[what]``: where a shard's time went, for its log."""
    start = time.perf_counter()
    try:
        yield
    finally:
        spent[what] = spent.get(what, 0.0) + time.perf_counter() - start


def rerun_failures(result: ShardResult, budget: int, execute: Execute,
                   log: logging.Logger | logging.LoggerAdapter[Any]) -> dict[str, list[Outcome]]:
    """Re-run the failed tests up to ``budget`` times; a test stops once it passes (it is then flaky)."""
    if result.aborted or result.timed_out or result.dirty:
        return {}  # the environment failed, not the tests: re-running would only repeat that
    reruns: dict[str, list[Outcome]] = {}
    pending = [r.node_id for r in result.results if r.failed and "::" in r.node_id]
    for attempt in range(1, budget + 1):
        if not pending:
            break
        log.info("re-running %d failed test(s), attempt %d of %d", len(pending), attempt, budget)
        _outcome, again = execute(pending, f"-rerun{attempt}")
        seen = {r.node_id: r.outcome for r in again}
        for node in pending:
            reruns.setdefault(node, []).append(seen.get(node, "error"))
        pending = [n for n in pending if reruns[n][-1] != "passed"]
    return reruns


def lost_shard(app: str, shard: int, tests: list[str], why: str, env: Environment | None = None) -> ShardResult:
    """The results of a node that ended without any of its own: every test it owed, as an error saying why."""
    return shard_result(app=app, shard=shard, tests=tests, results=[], outcome=CommandResult(aborted=why),
                        environment=env.id if env else "", host=env.host if env else "")
