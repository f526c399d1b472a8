"""Plan the run's executable nodes from the backlink graph, and draw the graph with final states."""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel

from tasks.common import TASK_DEFAULTS, suite_at
from testpilot.execution.shards import split_shards
from testpilot.graph import apply_states, build_graph, executable_dependencies, to_mermaid
from testpilot.graph.build import app_id, env_id, shard_id
from testpilot.results import Selection
from testpilot.run_report import rollup_states


class NodePlan(BaseModel):
    node: str
    app: str
    shard: int
    tests: list[str]
    deps: list[str]


@task(name="plan-nodes", **TASK_DEFAULTS)
def plan_nodes(suite_path: str, selection: Selection, durations: dict[str, dict[str, float]]) -> list[NodePlan]:
    """One node per non-empty shard of each selected app, waiting on exactly its graph dependencies."""
    suite = suite_at(suite_path)
    deps = executable_dependencies(build_graph(suite))
    plans: dict[str, NodePlan] = {}
    for app, config in suite.apps.items():
        tests = [t.test_id for t in selection.for_app(app)]
        for shard, chunk in enumerate(split_shards(tests, config.shards, durations.get(app))):
            plans[shard_id(app, shard)] = NodePlan(node=shard_id(app, shard), app=app, shard=shard, tests=chunk,
                                                   deps=[])
    for node, plan in plans.items():
        plan.deps = [d for d in deps.get(node, []) if d in plans]
    return list(plans.values())


def graph_mermaid(suite_path: str, states: dict[str, str], reasons: dict[str, str]) -> str:
    """The graph of this run (its nodes, their apps and environments) coloured by final state."""
    suite = suite_at(suite_path)
    graph = build_graph(suite, scan_test_markers=False)
    keep = set(states)
    node_app = {}
    for node in states:
        app = graph.node(node).metadata.get("app") if node in graph else None
        if app:
            node_app[node] = app
            keep |= {app_id(app), env_id(suite.environment_for(app))}
    sub = graph.subgraph([n for n in keep if n in graph])
    final = {**rollup_states(states, node_app, {a: suite.environment_for(a) for a in node_app.values()}), **states}
    apply_states(sub, final, reasons)
    return to_mermaid(sub)
