"""Run a shard's test command where its environment is: locally, or on a remote host over SSH.

Both runners take the same argv (built by ``build_argv``, never a shell string) and return the same
``CommandResult``; the stream monitor watches every line on both. A remote runner also fetches the
JUnit file back over SFTP. Re-runs of failed tests (flaky detection) reuse the runner, so a remote
shard keeps one SSH connection for its first run and its re-runs.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from testpilot.environments.base import Environment
from testpilot.errors import InfrastructureError, TestpilotError
from testpilot.execution.local import CommandResult, LineSink, run_local
from testpilot.execution.monitor import Event, StreamMonitor
from testpilot.execution.remote import RemoteHost

OnEvent = Callable[[Event], None]

REMOTE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Runner(Protocol):
    dirty: bool
    """Set when the environment can no longer be trusted (abort pattern, dropped connection)."""

    def run(self, argv: list[str], *, cwd: str, env: Mapping[str, str], timeout: float) -> CommandResult: ...

    def fetch(self, path: str, local_dir: Path) -> Path:
        """Make the file ``path`` (as the command saw it) readable on the worker; return the local path."""
        ...

    def close(self) -> None: ...


class LocalRunner:
    def __init__(self, *, on_line: LineSink | None = None, monitor: StreamMonitor | None = None,
                 on_event: OnEvent | None = None) -> None:
        self.on_line, self.monitor, self.on_event = on_line, monitor, on_event
        self.dirty = False

    def _watch(self, line: str) -> str | None:
        if self.monitor is None:
            return None
        for event in self.monitor.feed(line):
            if self.on_event is not None:
                self.on_event(event)
            if event.action == "abort":
                return f"StreamAbort: {event.pattern}: {line}"
        return None

    def run(self, argv: list[str], *, cwd: str, env: Mapping[str, str], timeout: float) -> CommandResult:
        result = run_local(argv, cwd=cwd, env=dict(env), timeout=timeout, on_line=self.on_line, watch=self._watch)
        self.dirty = self.dirty or bool(result.aborted)
        return result

    def fetch(self, path: str, local_dir: Path) -> Path:
        return Path(path)

    def close(self) -> None:
        return None


class RemoteRunner:
    """Runs on ``remote`` (connected lazily); a second drop or failed reconnect ends as an aborted run."""

    def __init__(self, remote: RemoteHost, *, on_line: LineSink | None = None,
                 monitor: StreamMonitor | None = None, on_event: OnEvent | None = None) -> None:
        self.remote = remote
        self.on_line, self.monitor, self.on_event = on_line, monitor, on_event
        self.dirty = False

    def run(self, argv: list[str], *, cwd: str, env: Mapping[str, str], timeout: float) -> CommandResult:
        try:
            result = self.remote.run(argv, cwd=cwd, env=env, timeout=timeout, on_line=self.on_line,
                                     on_event=self.on_event, monitor=self.monitor, phase="test")
        except TestpilotError as exc:  # a lost connection (dirty), or a login refused on reconnect
            self.dirty = self.dirty or isinstance(exc, InfrastructureError)
            return CommandResult(exit_code=None, aborted=f"{type(exc).__name__}: {exc.message}",
                                 tail=[f"{type(exc).__name__}: {exc.message}"])
        self.dirty = self.dirty or result.dirty
        aborted = f"StreamAbort: {result.aborted}" if result.aborted else ""
        return CommandResult(exit_code=result.exit_code, duration=result.duration, timed_out=result.timed_out,
                             aborted=aborted, tail=result.tail.splitlines())

    def fetch(self, path: str, local_dir: Path) -> Path:
        local = local_dir / posixpath.basename(path)
        local.unlink(missing_ok=True)
        try:
            self.remote.download(path, local)
        except InfrastructureError:
            self.dirty = True
        return local

    def close(self) -> None:
        self.remote.close()


def command_variables(env: Environment, app: str, extra: Mapping[str, str], *, inherited: Mapping[str, str],
                      path: str) -> dict[str, str]:
    """A test command's variables, local or remote: ``inherited`` (an allow-list, never the worker's secrets),
    the app's venv first on ``path``, the environment's and the app's own variables. Unbuffered, so
    output streams into the log as it happens rather than in 8 KiB blocks."""
    python = env.python.get(app)
    if python:
        path = f"{posixpath.dirname(python)}{os.pathsep}{path}"
    merged = {"PYTHONUNBUFFERED": "1", **inherited, "PATH": path, **env.env, **extra, "TESTPILOT_APP": app}
    if "PYTHONPATH" in extra and "PYTHONPATH" in env.env:
        merged["PYTHONPATH"] = os.pathsep.join((extra["PYTHONPATH"], env.env["PYTHONPATH"]))
    return merged


def remote_env(env: Environment, app: str, extra: Mapping[str, str], passed: Mapping[str, str]) -> dict[str, str]:
    """On a remote host nothing of the worker's is inherited but what the operator passes on purpose
    (``TESTPILOT_PASS_ENV``), and PATH is the host's standard one."""
    return command_variables(env, app, extra, inherited=passed, path=REMOTE_PATH)
