"""The scenario flow: one cross-application scenario, its services running for real, one task per step.

Verdicts map to flow-run states: passed -> Completed; failed -> Failed; blocked (an app unavailable or
an input missing, but nothing failed) -> Completed named "Blocked" with the reasons as its message, so a
blocked scenario never fails the run. The summary dict is the result in every case.
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure

from tasks.common import suite_at
from tasks.environments import cleanup_hook, provision, release_all, teardown
from tasks.locks import pool_locks
from tasks.scenarios import run_step, scenario_plan, start_app_service
from testpilot.environments.base import Environment
from testpilot.errors import ConfigError, TestpilotError
from testpilot.scenarios.plan import ScenarioPlan, StepResult
from testpilot.scenarios.report import scenario_markdown, scenario_summary
from testpilot.scenarios.services import free_port, service_url, stop_all, stop_services, url_variable
from testpilot.scenarios.steps import involved_apps


def _stop_services_hook(flow: object, flow_run: object, state: object) -> None:
    stop_all()
    cleanup_hook(flow, flow_run, state)


def _step_result(state: State) -> StepResult:
    value = state.result(raise_on_failure=False)
    if state.is_completed() and isinstance(value, dict):
        return StepResult.from_dict(value)
    reason = value.message if isinstance(value, TestpilotError) else (state.message or "failed")
    return StepResult("failed", reason=reason, cause="failure")


def _run_steps(suite: str, plan: ScenarioPlan, apps: list[str], envs: list[Environment], resume_key: str,
               backoff_scale: float) -> dict[str, Any]:
    config = suite_at(suite)
    env_of = {app: next(e for e in envs if app in e.python) for app in apps}
    ports = {app: free_port() for app in apps if config.apps[app].service}
    urls = {url_variable(app): service_url(port) for app, port in ports.items()}
    services: dict[str, dict[str, Any]] = {}
    try:
        started = {app: start_app_service.submit(suite, app, env_of[app], port, urls, backoff_scale)
                   for app, port in ports.items()}
        for future in started.values():
            future.wait()
        services = {app: f.state.result() for app, f in started.items() if f.state.is_completed()}
        for future in started.values():
            future.result()  # re-raises a start that failed (bad command); the finally stops the rest
        unavailable = {app: s["detail"] for app, s in services.items() if not s["ok"]}
        futures: dict[str, PrefectFuture[Any]] = {}
        for step in plan.steps:
            upstream = {dep: allow_failure(futures[dep]) for dep in step.needs}
            # allow_failure: a failed dependency must still let this task run, to end it Skipped with the reason.
            waits: list[Any] = list(upstream.values())
            futures[step.name] = run_step.submit(suite, plan.name, step.name, env_of[step.app], urls, unavailable,
                                                 upstream, resume_key, wait_for=waits)  # type: ignore[call-overload]
        for future in futures.values():
            future.wait()
        states = {name: future.state for name, future in futures.items()}
    finally:
        stop_services([s["pid"] for s in services.values()])
    results = {name: _step_result(state) for name, state in states.items()}
    return scenario_summary(plan, results, {n: str(s.name) for n, s in states.items()}, services)


@flow(name="testpilot-scenario", flow_run_name="scenario-{name}",
      task_runner=ThreadPoolTaskRunner(max_workers=int(os.environ.get("TESTPILOT_MAX_PARALLEL", "4"))),  # type: ignore[arg-type]
      on_crashed=[_stop_services_hook], on_cancellation=[_stop_services_hook])
def scenario(suite: str, name: str, envs: list[Environment] | None = None, resume_key: str | None = None,
             health_backoff_scale: float = 1.0) -> dict[str, Any] | State:
    """Run scenario ``name`` of the suite: start its apps' services, check their health, run each step
    as a task after its dependencies, and report passed / failed / blocked.

    ``envs``: environments already provisioned (by the pipeline) that hold the scenario's apps; apps
    none of them holds get environments of their own, locked, provisioned and always torn down here.
    ``resume_key``: steps that passed under the same key are reused instead of run again; default: the
    root flow run's id, so a retry of the same (pipeline) run resumes and a new run starts fresh. Pass
    e.g. the git head to resume across runs, or "" to never reuse.
    """
    config = suite_at(suite)
    if name not in config.scenarios:
        raise ConfigError(f"no scenario {name!r}", file=config.source, field="scenarios",
                          hint=f"scenarios are: {', '.join(config.scenarios) or 'none'}")
    plan = scenario_plan(suite, name)
    apps = involved_apps(config, plan.apps)
    key = f"run:{flow_run.root_flow_run_id}" if resume_key is None else resume_key
    given = list(envs or [])
    missing = [app for app in apps if not any(app in e.python for e in given)]
    if not missing:
        summary = _run_steps(suite, plan, apps, given, key, health_backoff_scale)
    else:
        pools: dict[str, list[str]] = {}
        for app in missing:
            pools.setdefault(config.environment_for(app), []).append(app)
        settings = [config.environments[p] for p in pools]
        own: list[Environment] = []
        with pool_locks({p: config.environments[p].pool_size for p in pools},
                        timeout=max(s.acquire_timeout for s in settings),
                        lease_seconds=max(s.lease_seconds for s in settings),
                        local={p for p in pools if config.environments[p].provider == "local"}) as slots:
            try:
                for pool, pool_apps in pools.items():
                    own.append(provision(suite, pool, pool_apps, str(flow_run.id or "local"), slots[pool]))
                summary = _run_steps(suite, plan, apps, [*given, *own], key, health_backoff_scale)
            finally:
                try:
                    teardown(suite, own)
                except BaseException:
                    release_all(suite, own)
                    raise
    create_markdown_artifact(scenario_markdown(summary), key=_artifact_key(name),
                             description=f"Scenario {name}: {summary['verdict']}")
    message = f"scenario {name} {summary['verdict']}: " + "; ".join(summary["reasons"])
    if summary["verdict"] == "failed":
        return Failed(message=message, data=summary)
    if summary["verdict"] == "blocked":
        return Completed(name="Blocked", message=message, data=summary)
    return summary


def _artifact_key(name: str) -> str:
    return "testpilot-scenario-" + re.sub(r"[^a-z0-9-]", "-", name.lower())


def run_scenarios(suite: str, envs: list[Environment] | None = None, names: list[str] | None = None,
                  resume_key: str | None = None) -> list[dict[str, Any]]:
    """Run scenarios one after another as subflows (all of the suite's when ``names`` is None) and return
    their summaries; a failed or blocked scenario does not stop the next. For the pipeline flow."""
    summaries = []
    for name in names if names is not None else list(suite_at(suite).scenarios):
        state = scenario(suite=suite, name=name, envs=envs, resume_key=resume_key, return_state=True)
        value = state.result(raise_on_failure=False)
        if isinstance(value, dict):
            summaries.append(value)
        else:  # the subflow crashed or raised (bad config, provisioning): a failed scenario with the reason
            summaries.append({"scenario": name, "verdict": "failed", "reasons": [str(value)], "steps": [],
                              "services": {}})
    return summaries


def scenario_pools(suite: str, names: list[str] | None = None) -> dict[str, list[str]]:
    """Pool -> apps the scenarios need (their apps and what those depend on), for the pipeline to merge
    into the apps it provisions, so ``run_scenarios`` finds every app in the environments it is given."""
    config = suite_at(suite)
    pools: dict[str, list[str]] = {}
    for name in names if names is not None else list(config.scenarios):
        for app in involved_apps(config, scenario_plan(suite, name).apps):
            apps = pools.setdefault(config.environment_for(app), [])
            if app not in apps:
                apps.append(app)
    return pools
