"""Running one scenario step in its app's environment: a pytest node id or a command.

The caller builds the process environment (allow-listed worker variables, the app venv first on PATH,
the app's ``env``, the environment's variables and the service URLs); this module adds the data flow
files and variables, runs the step without a shell and turns what happened into a ``StepResult``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from testpilot.errors import ConfigError, TestpilotError
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.local import CommandResult, run_local
from testpilot.scenarios.dataflow import (
    PLUGIN_FILE,
    PLUGIN_MODULE,
    StepOutputError,
    read_outputs,
    step_environment,
    write_inputs,
)
from testpilot.scenarios.plan import PlannedStep, StepResult
from testpilot.suite import AppConfig, Suite

Runner = Callable[..., CommandResult]


class StepFailed(TestpilotError):
    """A scenario step ran and failed (its test failed, or its command exited non-zero)."""

    def __init__(self, message: str, *, hint: str = "see the step's log for the test output") -> None:
        super().__init__(message, hint=hint)


def involved_apps(suite: Suite, apps: list[str]) -> list[str]:
    """The scenario's apps plus everything they depend on, in declaration order: the set of apps an
    environment must hold and whose services must run for the scenario."""
    wanted: set[str] = set()
    todo = list(apps)
    while todo:
        app = todo.pop()
        if app not in wanted:
            wanted.add(app)
            todo.extend(suite.apps[app].depends_on)
    return [a for a in suite.apps if a in wanted]


def step_folder(workdir: str, scenario: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", scenario)
    folder = Path(workdir) / ".testpilot" / "scenarios" / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def step_argv(step: PlannedStep, app: AppConfig, *, junit: str, plugin: bool) -> list[str]:
    """argv for the step: the app's test command with the node id (plus the plugin), or the command."""
    if step.test:
        return build_argv(app.test_command, tests=[step.test], junit=junit, app=step.app,
                          plugins=(PLUGIN_MODULE,) if plugin else ())
    try:
        argv = shlex.split(step.command or "")
    except ValueError as exc:
        raise ConfigError(f"cannot parse the command of step {step.name!r}: {exc}",
                          field=f"scenarios.*.steps.{step.index}.command", hint="balance the quotes") from None
    if not argv:
        raise ConfigError(f"step {step.name!r} has an empty command", field=f"scenarios.*.steps.{step.index}")
    return argv


def _test_result(step: PlannedStep, junit: Path, outcome: CommandResult, outputs: dict[str, Any]) -> StepResult:
    results = parse_junit(junit, app=step.app)
    tail = outcome.tail[-1] if outcome.tail else ""
    if outcome.timed_out:
        return StepResult("failed", outputs, f"step {step.name} timed out", cause="failure")
    if not results:
        return StepResult("failed", outputs, f"{step.test} did not run (exit {outcome.exit_code}): {tail}"[:500],
                          cause="failure")
    bad = [r for r in results if r.failed]
    if bad:
        return StepResult("failed", outputs, f"{bad[0].node_id} {bad[0].outcome}: {bad[0].message}"[:500],
                          cause="failure")
    if all(r.outcome == "skipped" for r in results):
        return StepResult("skipped", outputs, f"{step.test} skipped itself: {results[0].message}"[:500])
    return StepResult("passed", outputs)


def execute_step(step: PlannedStep, inputs: Mapping[str, Any], *, scenario: str, app: AppConfig, workdir: str,
                 env: Mapping[str, str], on_line: Callable[[str, str], None] | None = None,
                 runner: Runner = run_local) -> StepResult:
    """Run the step in ``<workdir>/<app>`` with its inputs and return its result and outputs.

    A pytest step passes when its test passed (a test that skipped itself gives a skipped step); a
    command step passes on exit 0. Outputs are read in every case, so a failed step's partial outputs
    can still be inspected. A malformed outputs file fails the step and names the file.
    """
    folder = step_folder(workdir, scenario)
    inputs_file, outputs_file = folder / f"{step.name}.inputs.json", folder / f"{step.name}.outputs.json"
    junit = folder / f"{step.name}.junit.xml"
    for stale in (outputs_file, junit):
        stale.unlink(missing_ok=True)
    write_inputs(inputs_file, inputs)
    plugin = (Path(workdir) / ".testpilot" / PLUGIN_FILE).exists()
    argv = step_argv(step, app, junit=str(junit), plugin=plugin)
    full_env = {**env, **step_environment(inputs, str(inputs_file), str(outputs_file))}
    try:
        outcome = runner(argv, cwd=str(Path(workdir) / step.app), env=full_env, timeout=app.timeout,
                         on_line=on_line)
    except OSError as exc:  # the program is missing or not executable: the step cannot pass
        return StepResult("failed", {}, f"step {step.name} (app {step.app}): cannot run {argv[0]}: {exc.strerror}",
                          cause="failure")
    try:
        outputs = read_outputs(outputs_file)
    except StepOutputError as exc:
        return StepResult("failed", {}, f"step {step.name} (app {step.app}): {exc}", cause="failure")
    if step.test:
        return _test_result(step, junit, outcome, outputs)
    if outcome.timed_out:
        return StepResult("failed", outputs, f"step {step.name} timed out", cause="failure")
    if outcome.exit_code != 0:
        tail = outcome.tail[-1] if outcome.tail else ""
        return StepResult("failed", outputs, f"{shlex.join(argv)} exited with code {outcome.exit_code}: {tail}"[:500],
                          cause="failure")
    return StepResult("passed", outputs)
