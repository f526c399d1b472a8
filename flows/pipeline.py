"""The pipeline flow: lock, provision, seed, select, run, analyse, report, and always tear down.

Its Prefect task dependencies are the backlink graph: one task run per executable node (an app
shard), started when exactly that node's graph dependencies are final. A node whose dependency
failed ends Skipped naming it; with ``fail_fast`` everything still pending is Cancelled.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.scenario import run_scenarios, scenario_pools
from tasks.common import suite_at
from tasks.environments import cleanup_hook, provision, release_all, teardown
from tasks.execution import lost_shard, run_node
from tasks.failures import analyse_failures
from tasks.graph import graph_mermaid, plan_nodes
from tasks.locks import pool_locks
from tasks.notify import notify_clusters
from tasks.reports import known_durations, publish_report, read_history, set_progress, start_progress
from tasks.selection import select_tests
from tasks.test_data import seed_data
from testpilot.environments.base import Environment
from testpilot.errors import TestsFailed
from testpilot.execution.schedule import Decision, run_dag
from testpilot.results import ShardResult
from testpilot.settings import get_settings


def _state_of(future: PrefectFuture[Any]) -> tuple[str, str]:
    future.wait()  # fixes the final state locally; reading it before can return a lagging API copy
    return future.state.name or "", future.state.message or ""


def _run_url() -> str:
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else ""


def _shard(future: PrefectFuture[Any]) -> ShardResult | None:
    data = future.result(raise_on_failure=False)
    return data if isinstance(data, ShardResult) else None


@flow(name="testpilot-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
      on_crashed=[cleanup_hook], on_cancellation=[cleanup_hook])
def pipeline(suite: str = "testpilot.yaml", base: str = "HEAD~1", head: str = "HEAD", full: bool = False,
             results_dir: str | None = None, max_parallel: int = 4, fail_fast: bool = False,
             scenarios: bool = True, budget: str | None = None, confidence: float | None = None
             ) -> dict[str, Any] | State:
    """Run the tests a change affects (or all with ``full``) in locked, freshly reset environments."""
    started = time.monotonic()
    run_id = str(flow_run.id or "local")
    config = suite_at(suite)
    progress = start_progress(f"Testpilot {config.name}: selecting")
    selection = select_tests(suite, base, head, full, budget, confidence)
    durations = known_durations(read_history(config.name))
    nodes = plan_nodes(suite, selection, {app: {t: d for (a, t), d in durations.items() if a == app}
                                          for app in config.apps})
    set_progress(progress, 10)
    pools: dict[str, list[str]] = {}
    for app in dict.fromkeys(n.app for n in nodes):
        pools.setdefault(config.environment_for(app), []).append(app)
    affected = {t.app for t in selection.selected}
    wanted = [name for name, sc in config.scenarios.items()
              if scenarios and (full or any(step.app in affected for step in sc.steps))]
    if wanted:
        for pool, extra in scenario_pools(suite, wanted).items():
            pools.setdefault(pool, []).extend(a for a in extra if a not in pools[pool])
    scenario_results: list[dict[str, Any]] = []
    envs: list[Environment] = []
    shards: list[ShardResult] = []
    states: dict[str, str] = {}
    reasons: dict[str, str] = {}
    if pools:
        settings = [config.environments[p] for p in pools]
        with pool_locks({p: config.environments[p].pool_size for p in pools},
                        timeout=max(s.acquire_timeout for s in settings),
                        lease_seconds=max(s.lease_seconds for s in settings)) as slots:
            try:
                for pool, pool_apps in pools.items():
                    envs.append(provision(suite, pool, pool_apps, run_id, slots[pool]))
                set_progress(progress, 25)
                envs = [seed_data(suite, env, pools[env.pool], run_id) for env in envs]
                env_of = {app: env for env in envs for app in pools[env.pool]}
                plan = {n.node: n for n in nodes}

                def start(node: str, decision: Decision) -> PrefectFuture[Any]:
                    n = plan[node]
                    set_progress(progress, 25 + 65 * len(states) / max(1, len(plan)))
                    return run_node.submit(suite, node, n.app, n.shard, n.tests, env_of[n.app],
                                           skip=decision.reason if decision.action == "skip" else "",
                                           cancel=decision.reason if decision.action == "cancel" else "")

                outcome = run_dag({n.node: n.deps for n in nodes}, start, lambda fs: next(as_completed(fs)),
                                  _state_of, max_parallel=max_parallel, fail_fast=fail_fast)
                states, reasons = outcome.states, outcome.reasons
                for node, future in outcome.handles.items():
                    shard = _shard(future)
                    if shard is None and states[node] in ("Failed", "Crashed"):  # died: still report its tests
                        n = plan[node]
                        why = reasons.get(node) or "the node ended without results"
                        shard = lost_shard(n.app, n.shard, n.tests, f"TaskCrashed: {why}")
                    if shard is not None:
                        shards.append(shard)
                dirty = {s.environment for s in shards if s.dirty}
                envs = [e.model_copy(update={"dirty": True}) if e.id in dirty else e for e in envs]
                if wanted:
                    scenario_results = run_scenarios(suite, envs, wanted)
            finally:
                try:
                    teardown(suite, envs)
                except BaseException:
                    release_all(suite, envs)
                    raise
    analysis = analyse_failures(suite, shards, selection.changed_files, run_id, _run_url())
    analysis = notify_clusters(suite, analysis)
    summary = publish_report(suite_name=config.name, selection=selection, shards=shards,
                             failures=analysis["per_test"],
                             wall_seconds=time.monotonic() - started,
                             results_dir=str(results_dir or get_settings().results_dir), run_id=run_id,
                             graph_mermaid=graph_mermaid(suite, states, reasons) if states else "",
                             extra={"clusters": analysis["section"], "scenarios": scenario_results,
                                    "nodes": {n: {"state": s, "reason": reasons.get(n, "")}
                                              for n, s in states.items()}})
    set_progress(progress, 100)
    failed_scenarios = [s for s in scenario_results if s.get("verdict") == "failed"]
    if summary["failed"] or failed_scenarios:
        error = TestsFailed(summary["failed"] + len(failed_scenarios), summary["tests"] + len(scenario_results),
                            summary["results_dir"])
        return Failed(message=str(error), data=error)  # a verdict, not a crash: no traceback in the log
    return summary
