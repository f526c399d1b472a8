"""Scenario tasks: start an app's service (with its health check) and run one scenario step.

A step's task ends in one of these Prefect states:

* ``Completed`` with the step's result (outputs included) when it passed; persisted, and cached under
  scenario + step + resume key + inputs, so a re-run with the same resume key reuses it ("Cached");
* ``Failed`` (raised ``StepFailed``) when its test failed or its command exited non-zero; never cached;
* ``Completed`` named ``Skipped`` when its app is unavailable or a dependency failed or was skipped,
  the message saying why ("app payment-service unavailable: ...");
* ``Completed`` named ``Blocked`` when an input is missing or has the wrong type, naming the producing
  step and field. Neither is a test failure, so neither fails the flow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Completed, State
from prefect.utilities.hashing import hash_objects

from tasks.common import suite_at
from tasks.execution import command_env
from testpilot.environments.base import Environment
from testpilot.scenarios.plan import ScenarioPlan, StepDecision, StepResult, decide_step, plan_scenario
from testpilot.scenarios.services import ServiceStatus, start_service, url_variable, wait_healthy
from testpilot.scenarios.steps import StepFailed, execute_step
from testpilot.settings import get_settings


def scenario_plan(suite_path: str, name: str) -> ScenarioPlan:
    suite = suite_at(suite_path)
    return plan_scenario(name, suite.scenarios[name], source=suite.source)


@task(name="start-service", task_run_name="service:{app}", cache_policy=NO_CACHE, persist_result=False)
def start_app_service(suite_path: str, app: str, env: Environment, port: int, urls: dict[str, str],
                      backoff_scale: float = 1.0) -> dict[str, Any]:
    """Start ``app``'s service on ``port`` and wait for its health check (retries with backoff)."""
    config = suite_at(suite_path).apps[app]
    assert config.service is not None
    log = str(Path(env.workdir) / ".testpilot" / f"service-{app}.log")
    pid = start_service(app, config.service.command, cwd=str(Path(env.workdir) / app), port=port, log_path=log,
                        env=command_env(env, app, {**config.env, **urls}),
                        record_dir=get_settings().home / "services", run_id=env.labels.get("testpilot-run", ""))
    health = wait_healthy(pid, config.service.health, port=port, log_path=log,
                          sleep=lambda s: time.sleep(s * backoff_scale))
    status = ServiceStatus(app, urls.get(url_variable(app), ""), port, pid, health.ok, health.detail, log)
    logger = get_run_logger()
    (logger.info if health.ok else logger.warning)("service %s on port %d: %s", app, port, health.detail)
    return status.to_dict()


def _as_result(value: Any) -> StepResult:
    """A dependency's value as Prefect hands it over: the result dict, or the exception it failed with."""
    if isinstance(value, dict) and "status" in value:
        return StepResult.from_dict(value)
    return StepResult("failed", reason=str(value), cause="failure")


def _decide(parameters: dict[str, Any]) -> StepDecision:
    plan = scenario_plan(parameters["suite_path"], parameters["scenario"])
    results = {dep: _as_result(v) for dep, v in parameters["upstream"].items()}
    return decide_step(plan, parameters["step"], results, unavailable=parameters["unavailable"])


def step_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Cache only steps that will really run, under a key a later run with the same resume key and the
    same inputs computes again. A skipped or blocked step, or no resume key, is never cached."""
    if not parameters.get("resume_key"):
        return None
    decision = _decide(parameters)
    if decision.action != "run":
        return None
    plan = scenario_plan(parameters["suite_path"], parameters["scenario"])
    step = plan.step(parameters["step"])
    return hash_objects("testpilot-scenario-step", parameters["resume_key"], suite_at(parameters["suite_path"]).name,
                        plan.name, step.name, step.app, step.test, step.command, dict(decision.inputs))


@task(name="scenario-step", task_run_name="{step}", cache_key_fn=step_cache_key, persist_result=True)
def run_step(suite_path: str, scenario: str, step: str, env: Environment, urls: dict[str, str],
             unavailable: dict[str, str], upstream: dict[str, Any], resume_key: str | None = None
             ) -> dict[str, Any] | State:
    """Decide and run one step; see the module docstring for the states it ends in."""
    logger = get_run_logger()
    decision = _decide({"suite_path": suite_path, "scenario": scenario, "step": step, "upstream": upstream,
                        "unavailable": unavailable})
    if decision.action in ("skip", "block"):
        assert decision.result is not None
        logger.warning("%s %s: %s", decision.action, step, decision.reason)
        return Completed(name="Skipped" if decision.action == "skip" else "Blocked", message=decision.reason,
                         data=decision.result.to_dict())
    suite = suite_at(suite_path)
    planned = scenario_plan(suite_path, scenario).step(step)
    app = suite.apps[planned.app]
    result = execute_step(planned, decision.inputs, scenario=scenario, app=app, workdir=env.workdir,
                          env=command_env(env, planned.app, {**app.env, **urls}),
                          on_line=lambda _stream, line: logger.info("%s", line))
    if result.status == "failed":
        raise StepFailed(f"step {step} (app {planned.app}) failed: {result.reason}")
    if result.status != "passed":
        return Completed(name="Skipped", message=result.reason, data=result.to_dict())
    logger.info("step %s passed; outputs: %s", step, ", ".join(result.outputs) or "none")
    return result.to_dict()
