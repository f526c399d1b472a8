"""Run one shard of an app's tests in an environment, streaming output into the task-run log."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import get_run_logger, task

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
    merged = {**base, "PATH": path, **env.env, **extra, "TESTPILOT_APP": app}
    if "PYTHONPATH" in extra and "PYTHONPATH" in env.env:
        merged["PYTHONPATH"] = os.pathsep.join((extra["PYTHONPATH"], env.env["PYTHONPATH"]))
    return merged


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
