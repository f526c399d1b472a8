"""The pipeline's stages, each a composition of tasks: what a run needs, its graph on the members it holds,
and from results to the verdict. ``flows/pipeline.py`` strings them together inside the locks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect.futures import PrefectFuture
from prefect.states import Failed, State

from flows import run_page
from flows.fanout import Placement, shards_by_member
from flows.scenario import scenario_pools
from tasks.execution import run_node
from tasks.failures import analyse_failures
from tasks.graph import NodePlan, graph_mermaid
from tasks.nodes import pool_request, run_on_pool
from tasks.notify import notify_clusters
from tasks.reports import publish_report, set_progress
from tasks.run_view import failing_test_history
from tasks.triage import apply_triage
from tasks.verdict import publish_verdict
from testpilot.environments.base import Environment
from testpilot.execution.outcome import run_verdict
from testpilot.execution.schedule import Decision, Outcome, run_dag
from testpilot.execution.shard import lost_shard
from testpilot.results import Selection, ShardResult
from testpilot.run_report import verdict
from testpilot.source import SourceTree
from testpilot.suite import Suite
from testpilot.verdict import verdict_row


@dataclass
class Needs:
    """Pool -> the apps provisioned there (the nodes' apps and what the scenarios need), the scenarios
    that run, and every app involved."""

    pools: dict[str, list[str]]
    scenarios: list[str]
    apps: list[str]


@dataclass
class Ran:
    """What happened while the run held its members: filled in as it goes, so that an interrupted run
    still hands back every environment and reports every finished node."""

    lock_wait: float = 0.0
    envs: list[Environment] = field(default_factory=list)
    submitted: list[PrefectFuture[Any]] = field(default_factory=list)
    outcome: Outcome[PrefectFuture[Any]] = field(default_factory=Outcome)
    shards: list[ShardResult] = field(default_factory=list)
    scenario_results: list[dict[str, Any]] = field(default_factory=list)
    interrupted: str = ""


def needs_of(suite: str, config: Suite, nodes: list[NodePlan], selection: Selection, *, scenarios: bool,
             full: bool) -> Needs:
    """The pools and apps to provision: each node's app in its pool, plus what the scenarios that run need
    (all with ``full``, else those with a step in an app that has selected tests)."""
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
    return Needs(pools, wanted, apps)


def run_graph(suite: str, config: Suite, tree: SourceTree, selection: Selection, nodes: list[NodePlan],
              durations: dict[str, dict[str, float]], ran: Ran, progress: UUID, *, run_id: str,
              max_parallel: int, fail_fast: bool) -> None:
    """Start every node on the member it is placed on once its dependencies are final (a skipped or
    cancelled node only reports why); collect each node's shard into ``ran``, a lost one as every test
    it owed."""
    placement = Placement(config, ran.envs, nodes, durations)
    plan = {n.node: n for n in nodes}
    moved = run_page.NodeProgress(progress, f"Testpilot {config.name}", len(plan))

    def start(node: str, decision: Decision) -> PrefectFuture[Any]:
        n = plan[node]
        tags = run_page.node_tags(config, n.app, selection.head_commit)
        env = placement.env_for(node, decision.action == "run")
        if decision.action == "run" and env and config.execution_of(n.app) == "work-pool":
            future = run_on_pool.with_options(tags=tags).submit(  # a flow run on a work pool
                config.node_deployment_of(n.app), pool_request(tree, node, n.app, n.shard, n.tests, env, run_id))
        else:
            future = run_node.with_options(tags=tags).submit(
                suite, node, n.app, n.shard, n.tests, env, skip=decision.reason if decision.action == "skip" else "",
                cancel=decision.reason if decision.action == "cancel" else "")
        ran.submitted.append(placement.track(node, future))
        if decision.action != "run":  # over already: it never reaches wait_any
            moved.ended("Skipped" if decision.action == "skip" else "Cancelled")
        return future

    ran.outcome = run_dag(placement.deps(nodes), start, placement.waiter(moved.wait_any), _state_of,
                          max_parallel=max_parallel, fail_fast=fail_fast)
    for node, future in ran.outcome.handles.items():
        shard = _shard(future)
        if shard is None and ran.outcome.states[node] in ("Failed", "Crashed"):  # died: still report its tests
            n = plan[node]
            why = ran.outcome.reasons.get(node) or "the node ended without results"
            shard = lost_shard(n.app, n.shard, n.tests, f"TaskCrashed: {why}")
        if shard is not None:
            ran.shards.append(shard)
    dirty = {s.environment for s in ran.shards if s.dirty}
    ran.envs[:] = [e.model_copy(update={"dirty": True}) if e.id in dirty else e for e in ran.envs]


def conclude(suite: str, config: Suite, tree: SourceTree, selection: Selection, nodes: list[NodePlan],
             needs: Needs, ran: Ran, progress: UUID, *, run_id: str, results_dir: str,
             started: float) -> dict[str, Any] | State:
    """Analyse and route the failures, publish the report and the summary, and return the verdict: the
    summary, or a Failed state whose message says why (a verdict, not a crash: no traceback)."""
    states, reasons = ran.outcome.states, ran.outcome.reasons
    analysis = analyse_failures(suite, ran.shards, selection.changed_files, run_id, run_page.run_url(), tree.root,
                                selection.head_commit)
    analysis = apply_triage(config.name, notify_clusters(suite, analysis))
    view = run_page.summary_view(config, ran.envs, ran.lock_wait, dict(ran.outcome.handles),
                                 {n.node: (n.app, n.shard) for n in nodes}, states, reasons, needs.scenarios)
    failed_durations = {f"{r.app}::{r.node_id}": r.duration for s in ran.shards for r in s.failures}
    view["history_md"] = failing_test_history(suite, config.name, analysis["per_test"], selection, run_id,
                                              failed_durations)
    summary = publish_report(
        suite_name=config.name, selection=selection, shards=ran.shards, failures=analysis["per_test"],
        notes=tree.notes + [n for env in ran.envs for n in env.metadata.get("notes", [])],
        wall_seconds=time.monotonic() - started, results_dir=results_dir, run_id=run_id,
        graph_mermaid=graph_mermaid(suite, states, reasons) if states else "",
        extra={"clusters": analysis["section"], "scenarios": ran.scenario_results, "source": tree.model_dump(),
               "members": shards_by_member(view["envs"], ran.shards),
               "nodes": {n: {"state": s, "reason": reasons.get(n, "")} for n, s in states.items()}},
        view={**view, "clusters": analysis["section"].get("clusters", []), "scenarios": ran.scenario_results})
    _, why = verdict(summary, analysis["per_test"], ran.scenario_results, view["not_run"])
    run_page.publish_summary(summary.pop("markdown"), why)
    set_progress(progress, 100, f"Testpilot {config.name}: {why}"[:500])
    failed_scenarios = [s for s in ran.scenario_results if s.get("verdict") == "failed"]
    error = run_verdict(ran.shards, failed=summary["failed"], total=summary["tests"],
                        results_dir=summary["results_dir"], scenarios=(len(failed_scenarios), len(ran.scenario_results)))
    if error is not None:
        message = why if error.exit_code == 1 else str(error)  # lost infrastructure says so first
        publish_verdict(run_id, verdict_row(error.exit_code, message, summary, summary["stored"]))
        return Failed(message=message, data=error)
    publish_verdict(run_id, verdict_row(0, why, summary, summary["stored"]))
    return summary


def _state_of(future: PrefectFuture[Any]) -> tuple[str, str]:
    future.wait()  # fixes the final state locally; reading it before can return a lagging API copy
    return future.state.name or "", future.state.message or ""


def _shard(future: PrefectFuture[Any]) -> ShardResult | None:
    data = future.result(raise_on_failure=False)
    return data if isinstance(data, ShardResult) else None
