"""Fan-out within a run, as the pipeline composes it: hold several members of a pool, provision each,
and start every shard node on the member ``FanOut`` picks (docs/operations.md, Fan-out within a run).

A pool with ``max_members: 1`` (the default) takes one member and its nodes start in plan order, as
before. Only the first member of a pool is waited for; extra members are taken when free and
provisioned together; one that fails to come up is logged and left out, never waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from tasks.environments import provision
from tasks.graph import NodePlan
from testpilot.environments.base import Environment
from testpilot.execution.fanout import FanOut, node_seconds
from testpilot.results import ShardResult
from testpilot.suite import Suite

PROVISION_GRACE = 60.0  # seconds an interrupted run waits for members still coming up, to hand them back


def members_wanted(config: Suite, pools: Iterable[str], nodes: list[NodePlan]) -> dict[str, int]:
    """Per pool: how many members the run asks for (its max_members, capped by pool size and shard nodes)."""
    shards = {pool: sum(1 for n in nodes if config.environment_for(n.app) == pool) for pool in pools}
    return {pool: config.environments[pool].members_wanted(count) for pool, count in shards.items()}


def provision_members(suite: str, pools: dict[str, list[str]], slots: dict[str, list[int]], run_id: str,
                      envs: list[Environment]) -> None:
    """Provision every member held, appending each to ``envs`` once it is up (so teardown hands it back
    whatever happens next). The first member of each pool comes first in ``envs``."""
    if all(len(held) == 1 for held in slots.values()):
        for pool, pool_apps in pools.items():
            envs.append(provision(suite, pool, pool_apps, run_id, slots[pool][0]))
        return
    held = [(pool, slots[pool][0], True) for pool in pools] + [
        (pool, slot, False) for pool in pools for slot in slots[pool][1:]]
    futures = [(pool, first, provision.submit(suite, pool, pools[pool], run_id, slot)) for pool, slot, first in held]
    try:
        for _pool, _first, future in futures:
            future.wait()
    finally:  # interrupted too: what came up is handed back with the rest
        deadline = time.monotonic() + PROVISION_GRACE
        for _pool, _first, future in futures:
            future.wait(timeout=max(0.0, deadline - time.monotonic()))
        for _pool, _first, future in futures:
            if future.state.is_completed():
                envs.append(future.result())
    for pool, first, future in futures:
        if future.state.is_completed():
            continue
        if first:
            future.result()  # raises why the pool's first member failed, as a run with one member does
        get_run_logger().warning("an extra member of pool %r did not come up and is not used: %s", pool,
                                 future.state.message)


class Placement:
    """Which member each shard node of the run starts on, and which ran where."""

    def __init__(self, config: Suite, envs: list[Environment], nodes: list[NodePlan],
                 durations: dict[str, dict[str, float]]) -> None:
        members: dict[str, list[Environment]] = {}
        for env in envs:
            members.setdefault(env.pool, []).append(env)
        self.spread = any(len(found) > 1 for found in members.values())
        self.fan: FanOut[Environment] = FanOut(members, {
            n.node: (config.environment_for(n.app), node_seconds(n.tests, durations.get(n.app))) for n in nodes})
        self._node_of: dict[Any, str] = {}

    def deps(self, nodes: list[NodePlan]) -> dict[str, list[str]]:
        """The graph for ``run_dag``; when members are spread, ready nodes start longest first (LPT)."""
        deps = {n.node: n.deps for n in nodes}
        return {node: deps[node] for node in self.fan.order(deps)} if self.spread else deps

    def env_for(self, node: str, runs: bool) -> Environment:
        """The member ``node`` goes to; ``runs`` records it as started there (a skipped node only reports)."""
        return self.fan.started(node) if runs else self.fan.env_for(node)

    def track(self, node: str, future: PrefectFuture[Any]) -> PrefectFuture[Any]:
        self._node_of[future.task_run_id] = node
        return future

    def waiter(self, wait_any: Callable[[list[PrefectFuture[Any]]], PrefectFuture[Any]]
               ) -> Callable[[list[PrefectFuture[Any]]], PrefectFuture[Any]]:
        """``wait_any`` that also frees the finished node's member at once."""
        def wait(futures: list[PrefectFuture[Any]]) -> PrefectFuture[Any]:
            done = wait_any(futures)
            self.fan.finished(self._node_of.get(done.task_run_id, ""))
            return done
        return wait


def shards_by_member(view_envs: list[dict[str, Any]], shards: list[ShardResult]) -> dict[str, list[str]]:
    """Which member ran which shard (from the results), written into the summary's environment rows.
    Every member the run held is listed, one that ran nothing with an empty list."""
    ran: dict[str, list[str]] = {row["id"]: [] for row in view_envs}
    for shard in sorted(shards, key=lambda s: (s.app, s.shard)):
        if shard.environment:
            ran.setdefault(shard.environment, []).append(f"{shard.app}[{shard.shard}]")
    for row in view_envs:
        row["shards"] = ", ".join(ran[row["id"]]) or "-"
    return ran
