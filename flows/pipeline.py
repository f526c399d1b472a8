"""The pipeline flow: lock, provision, seed, select, run, analyse, report, and always tear down."""

from __future__ import annotations

import graphlib
import os
import time
from typing import Any

from prefect import flow
from prefect.states import Failed, State
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.common import suite_at
from tasks.environments import cleanup_hook, provision, release_all, teardown
from tasks.execution import run_shard
from tasks.failures import analyse_failures
from tasks.locks import pool_locks
from tasks.reports import known_durations, publish_report, read_history, set_progress, start_progress
from tasks.selection import select_tests
from tasks.test_data import seed_data
from testpilot.environments.base import Environment
from testpilot.errors import TestsFailed
from testpilot.execution.shards import split_shards
from testpilot.results import Selection, ShardResult
from testpilot.settings import get_settings


def _apps_in_order(selection: Selection, depends_on: dict[str, list[str]]) -> list[str]:
    wanted = {t.app for t in selection.selected}
    order = graphlib.TopologicalSorter({a: [d for d in depends_on[a] if d in wanted] for a in wanted})
    return list(order.static_order())


@flow(name="testpilot-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=int(os.environ.get(
      "TESTPILOT_MAX_PARALLEL", "4"))), on_crashed=[cleanup_hook], on_cancellation=[cleanup_hook])
def pipeline(suite: str = "testpilot.yaml", base: str = "HEAD~1", head: str = "HEAD", full: bool = False,
             results_dir: str | None = None) -> dict[str, Any] | State:
    """Run the tests a change affects (or all with ``full``) in locked, freshly reset environments."""
    started = time.monotonic()
    run_id = str(flow_run.id or "local")
    config = suite_at(suite)
    progress = start_progress(f"Testpilot {config.name}: selecting")
    selection = select_tests(suite, base, head, full)
    set_progress(progress, 10)
    apps = _apps_in_order(selection, {a: c.depends_on for a, c in config.apps.items()})
    pools: dict[str, list[str]] = {}
    for app in apps:
        pools.setdefault(config.environment_for(app), []).append(app)
    envs: list[Environment] = []
    shards: list[ShardResult] = []
    durations = known_durations(read_history(config.name))
    if pools:
        settings = [config.environments[p] for p in pools]
        with pool_locks({p: config.environments[p].pool_size for p in pools},
                        timeout=max(s.acquire_timeout for s in settings),
                        lease_seconds=max(s.lease_seconds for s in settings)):
            try:
                for pool, pool_apps in pools.items():
                    envs.append(provision(suite, pool, pool_apps, run_id))
                set_progress(progress, 25)
                for env in envs:
                    seed_data(suite, env)
                env_of = {app: env for env in envs for app in pools[env.pool]}
                futures: dict[str, list[PrefectFuture[ShardResult]]] = {}
                for app in apps:
                    tests = [t.test_id for t in selection.for_app(app)]
                    upstream = [f for dep in config.apps[app].depends_on for f in futures.get(dep, [])]
                    app_durations = {t: d for (a, t), d in durations.items() if a == app}
                    futures[app] = [run_shard.submit(suite, app, i, chunk, env_of[app], wait_for=upstream)
                                    for i, chunk in enumerate(split_shards(tests, config.apps[app].shards,
                                                                           app_durations))]
                pending = [f for fs in futures.values() for f in fs]
                for done, future in enumerate(pending, 1):
                    shards.append(future.result())
                    set_progress(progress, 25 + 65 * done / len(pending))
            finally:
                try:
                    teardown(suite, envs)
                except BaseException:
                    release_all(suite, envs)
                    raise
    failures = analyse_failures(suite, [r for s in shards for r in s.results])
    summary = publish_report(suite_name=config.name, selection=selection, shards=shards, failures=failures,
                             wall_seconds=time.monotonic() - started,
                             results_dir=str(results_dir or get_settings().results_dir), run_id=run_id)
    set_progress(progress, 100)
    if summary["failed"]:
        error = TestsFailed(summary["failed"], summary["tests"], summary["results_dir"])
        return Failed(message=str(error), data=error)  # a verdict, not a crash: no traceback in the log
    return summary
