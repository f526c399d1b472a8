"""The pipeline flow: lock, provision, seed, select, run, analyse, report, and always tear down.

Its Prefect task dependencies are the backlink graph: one task run per executable node (an app
shard), started when exactly that node's graph dependencies are final. A node whose dependency
failed ends Skipped naming it; with ``fail_fast`` everything still pending is Cancelled.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.runtime import deployment, flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows import run_page
from flows.fanout import Placement, members_wanted, provision_members, shards_by_member
from flows.interruption import finished_shards, keep_results, signal_name, stop_and_release
from flows.scenario import run_scenarios, scenario_pools
from tasks.common import suite_at
from tasks.environments import cleanup_hook
from tasks.execution import run_node
from tasks.failures import analyse_failures
from tasks.graph import graph_mermaid, plan_nodes
from tasks.locks import member_locks, publish_locks
from tasks.nodes import cancel_nodes_hook, pool_request, run_on_pool
from tasks.notify import notify_clusters
from tasks.reports import known_durations, publish_report, read_history, set_progress, start_progress
from tasks.run_view import failing_test_history, rename_flow_run, tag_flow_run
from tasks.selection import select_tests
from tasks.source import checkout_head, drop_source_hook
from tasks.test_data import seed_data
from tasks.triage import apply_triage
from tasks.verdict import publish_verdict, verdict_hook
from testpilot.environments.base import Environment
from testpilot.execution.outcome import run_verdict
from testpilot.execution.schedule import Decision, run_dag
from testpilot.execution.shard import lost_shard
from testpilot.results import ShardResult
from testpilot.run_report import run_tags, verdict
from testpilot.settings import get_settings
from testpilot.source import run_name
from testpilot.verdict import verdict_row


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


def _run_name() -> str:
    """``base..head @ <head sha>``: the resolved commit is in the run's name (best effort, never fails)."""
    params = flow_run.parameters
    return run_name(params.get("suite", ""), params.get("repo"), params.get("base", ""), params.get("head", ""))


@flow(name="testpilot-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
      flow_run_name=_run_name, on_completion=[drop_source_hook], on_failure=[drop_source_hook, verdict_hook],
      on_crashed=[cleanup_hook, drop_source_hook, verdict_hook, cancel_nodes_hook],
      on_cancellation=[cleanup_hook, drop_source_hook, cancel_nodes_hook])
def pipeline(suite: str = "testpilot.yaml", base: str = "HEAD~1", head: str = "HEAD", full: bool = False,
             results_dir: str | None = None, max_parallel: int = 4, fail_fast: bool = False,
             scenarios: bool = True, budget: str | None = None, confidence: float | None = None,
             repo: str | None = None) -> dict[str, Any] | State:
    """Run the tests a change affects (or all with ``full``) in locked, freshly reset environments.

    The code tested is the ``head`` commit, written into a folder of the run (``WORKTREE``: the
    working tree as it is). ``repo`` is the clone refs resolve in, and relative ``suite`` paths too
    (default: the working folder)."""
    started = time.monotonic()
    run_id = str(flow_run.id or "local")
    tree = checkout_head(suite, repo, head, run_id, "suite" if deployment.id else "--suite", None if full else base)
    suite = tree.suite  # from here on everything reads the materialised commit, not the checkout
    rename_flow_run(_run_name())  # refs a fetch just brought in resolve now
    config = suite_at(suite)
    progress = start_progress(f"Testpilot {config.name}: selecting")
    selection = select_tests(suite, base, tree.commit or None, full, budget, confidence, source=tree)
    set_progress(progress, 5, f"Testpilot {config.name}: planning {len(selection.selected)} selected test id(s)")
    durations = known_durations(read_history(config.name))
    app_durations = {app: {t: d for (a, t), d in durations.items() if a == app} for app in config.apps}
    nodes = plan_nodes(suite, selection, app_durations)
    pools: dict[str, list[str]] = {}
    for app in dict.fromkeys(n.app for n in nodes):
        pools.setdefault(config.environment_for(app), []).append(app)
    affected = {t.app for t in selection.selected}
    wanted = [name for name, sc in config.scenarios.items()
              if scenarios and (full or any(step.app in affected for step in sc.steps))]
    if wanted:
        for pool, extra in scenario_pools(suite, wanted).items():
            pools.setdefault(pool, []).extend(a for a in extra if a not in pools[pool])
    apps = list(dict.fromkeys([*(n.app for n in nodes), *(a for ap in pools.values() for a in ap)]))
    tag_flow_run(run_tags(config.name, apps, {a: config.apps[a].owners for a in apps}, list(pools),
                          selection.head_commit))
    set_progress(progress, 10, f"Testpilot {config.name}: waiting for pool(s) {', '.join(pools) or '-'}")
    scenario_results: list[dict[str, Any]] = []
    lock_wait = 0.0
    envs: list[Environment] = []
    shards: list[ShardResult] = []
    states: dict[str, str] = {}
    reasons: dict[str, str] = {}
    submitted: list[PrefectFuture[Any]] = []
    interrupted = ""
    if pools:
        settings = [config.environments[p] for p in pools]
        lock_wait = time.monotonic()
        with member_locks({p: config.environments[p].pool_size for p in pools},
                          timeout=max(s.acquire_timeout for s in settings),
                          lease_seconds=max(s.lease_seconds for s in settings),
                          local={p for p in pools if config.environments[p].provider == "local"},
                          members=members_wanted(config, pools, nodes)) as slots:
            lock_wait = time.monotonic() - lock_wait
            publish_locks({p: config.environments[p].pool_size for p in pools}, run_page.ui_url(),
                          {"run_id": run_id, "name": str(flow_run.name), "state": "Running"},
                          local={p for p in pools if config.environments[p].provider == "local"})
            try:
                provision_members(suite, pools, slots, run_id, envs)
                set_progress(progress, 25, f"Testpilot {config.name}: seeding data")
                envs = [seed_data(suite, env, pools[env.pool], run_id) for env in envs]
                placement = Placement(config, envs, nodes, app_durations)
                plan = {n.node: n for n in nodes}

                def start(node: str, decision: Decision) -> PrefectFuture[Any]:
                    n = plan[node]
                    tags = run_page.node_tags(config, n.app, selection.head_commit)
                    env = placement.env_for(node, decision.action == "run")
                    if decision.action == "run" and env and config.execution_of(n.app) == "work-pool":
                        submitted.append(placement.track(node, run_on_pool.with_options(tags=tags).submit(
                            config.node_deployment_of(n.app),  # a flow run on a work pool
                            pool_request(tree, node, n.app, n.shard, n.tests, env, run_id))))
                        return submitted[-1]
                    submitted.append(placement.track(node, run_node.with_options(tags=tags).submit(
                        suite, node, n.app, n.shard, n.tests, env,
                        skip=decision.reason if decision.action == "skip" else "",
                        cancel=decision.reason if decision.action == "cancel" else "")))
                    return submitted[-1]

                wait_any = run_page.progress_waiter(progress, f"Testpilot {config.name}", len(plan), {})
                outcome = run_dag(placement.deps(nodes), start, placement.waiter(wait_any),
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
                    set_progress(progress, 90, f"Testpilot {config.name}: scenario(s) {', '.join(wanted)}")
                    scenario_results = run_scenarios(suite, envs, wanted)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM (TerminationSignal), a cancel
                    interrupted = signal_name(exc)
                raise
            finally:
                try:
                    stop_and_release(suite, envs, submitted, interrupted=bool(interrupted))
                finally:
                    if interrupted:  # the results of what finished are kept, marked as interrupted
                        keep_results(lambda: publish_report.fn(
                            suite_name=config.name, selection=selection, shards=finished_shards(submitted),
                            failures=[], wall_seconds=time.monotonic() - started,
                            results_dir=str(results_dir or get_settings().results_dir), run_id=run_id,
                            extra={"interrupted": interrupted}))
    analysis = analyse_failures(suite, shards, selection.changed_files, run_id, _run_url(), tree.root,
                                selection.head_commit)
    analysis = notify_clusters(suite, analysis)
    analysis = apply_triage(config.name, analysis)
    view = run_page.summary_view(config, envs, lock_wait, dict(outcome.handles) if states else {},
                                 {n.node: (n.app, n.shard) for n in nodes}, states, reasons, wanted)
    members = shards_by_member(view["envs"], shards)
    failed_durations = {f"{r.app}::{r.node_id}": r.duration for s in shards for r in s.failures}
    view["history_md"] = failing_test_history(suite, config.name, analysis["per_test"], selection, run_id,
                                              failed_durations)
    notes = tree.notes + [n for env in envs for n in env.metadata.get("notes", [])]
    summary = publish_report(suite_name=config.name, selection=selection, shards=shards, notes=notes,
                             failures=analysis["per_test"],
                             wall_seconds=time.monotonic() - started,
                             results_dir=str(results_dir or get_settings().results_dir), run_id=run_id,
                             graph_mermaid=graph_mermaid(suite, states, reasons) if states else "",
                             extra={"clusters": analysis["section"], "scenarios": scenario_results,
                                    "source": tree.model_dump(), "members": members,
                                    "nodes": {n: {"state": s, "reason": reasons.get(n, "")}
                                              for n, s in states.items()}},
                             view={**view, "clusters": analysis["section"].get("clusters", []),
                                   "scenarios": scenario_results})
    _, why = verdict(summary, analysis["per_test"], scenario_results, view["not_run"])
    run_page.publish_summary(summary.pop("markdown"), why)
    set_progress(progress, 100, f"Testpilot {config.name}: {why}"[:500])
    failed_scenarios = [s for s in scenario_results if s.get("verdict") == "failed"]
    error = run_verdict(shards, failed=summary["failed"], total=summary["tests"], results_dir=summary["results_dir"],
                        scenarios=(len(failed_scenarios), len(scenario_results)))
    if error is not None:
        message = why if error.exit_code == 1 else str(error)  # lost infrastructure says so first
        publish_verdict(run_id, verdict_row(error.exit_code, message, summary, summary["stored"]))
        return Failed(message=message, data=error)  # a verdict, not a crash: no traceback in the log
    publish_verdict(run_id, verdict_row(0, why, summary, summary["stored"]))
    return summary
