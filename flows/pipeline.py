"""The pipeline flow: lock, provision, seed, select, run, analyse, report, and always tear down.

Its Prefect task dependencies are the backlink graph: one task run per executable node (an app
shard), started when exactly that node's graph dependencies are final. A node whose dependency
failed ends Skipped naming it; with ``fail_fast`` everything still pending is Cancelled.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.runtime import deployment, flow_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.fanout import members_wanted, provision_members
from flows.interruption import finished_shards, keep_results, signal_name, stop_and_release
from flows.run_page import ui_url
from flows.scenario import run_scenarios
from flows.stages import Ran, conclude, needs_of, run_graph
from tasks.common import suite_at
from tasks.environments import cleanup_hook
from tasks.graph import plan_nodes
from tasks.locks import member_locks, publish_locks
from tasks.nodes import cancel_nodes_hook
from tasks.reports import known_durations, publish_report, read_history, set_progress, start_progress
from tasks.run_view import rename_flow_run, tag_flow_run
from tasks.selection import select_tests
from tasks.source import checkout_head, drop_source_hook
from tasks.test_data import seed_data
from tasks.verdict import verdict_hook
from testpilot.run_report import run_tags
from testpilot.settings import get_settings
from testpilot.source import run_name


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
    needs = needs_of(suite, config, nodes, selection, scenarios=scenarios, full=full)
    pools = needs.pools
    tag_flow_run(run_tags(config.name, needs.apps, {a: config.apps[a].owners for a in needs.apps}, list(pools),
                          selection.head_commit))
    set_progress(progress, 10, f"Testpilot {config.name}: waiting for pool(s) {', '.join(pools) or '-'}")
    results = str(results_dir or get_settings().results_dir)
    ran = Ran()
    if pools:
        local = {p for p in pools if config.environments[p].provider == "local"}
        sizes = {p: config.environments[p].pool_size for p in pools}
        ran.lock_wait = time.monotonic()
        with member_locks(sizes, timeout=max(config.environments[p].acquire_timeout for p in pools),
                          lease_seconds=max(config.environments[p].lease_seconds for p in pools),
                          local=local, members=members_wanted(config, pools, nodes)) as slots:
            ran.lock_wait = time.monotonic() - ran.lock_wait
            lock_view = publish_locks.submit(sizes, ui_url(), {"run_id": run_id, "name": str(flow_run.name),
                                                                "state": "Running"}, local=local)
            try:
                provision_members(suite, pools, slots, run_id, ran.envs)
                lock_view.wait()  # written while the members came up; a failure to write it fails no run
                set_progress(progress, 25, f"Testpilot {config.name}: seeding data")
                seeding = [seed_data.submit(suite, env, pools[env.pool], run_id) for env in ran.envs]
                ran.envs[:] = [seeded.result() for seeded in seeding]  # every member's databases at once
                run_graph(suite, config, tree, selection, nodes, app_durations, ran, progress, run_id=run_id,
                          max_parallel=max_parallel, fail_fast=fail_fast)
                if needs.scenarios:
                    set_progress(progress, 90, f"Testpilot {config.name}: scenario(s) {', '.join(needs.scenarios)}")
                    ran.scenario_results = run_scenarios(suite, ran.envs, needs.scenarios)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM (TerminationSignal), a cancel
                    ran.interrupted = signal_name(exc)
                raise
            finally:
                try:
                    stop_and_release(suite, ran.envs, ran.submitted, interrupted=bool(ran.interrupted))
                finally:
                    if ran.interrupted:  # the results of what finished are kept, marked as interrupted
                        keep_results(lambda: publish_report.fn(
                            suite_name=config.name, selection=selection, shards=finished_shards(ran.submitted),
                            failures=[], wall_seconds=time.monotonic() - started, results_dir=results, run_id=run_id,
                            extra={"interrupted": ran.interrupted}))
    return conclude(suite, config, tree, selection, nodes, needs, ran, progress, run_id=run_id, results_dir=results,
                    started=started)
