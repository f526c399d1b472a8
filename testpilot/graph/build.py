"""Build the backlink graph from the suite model, and derive what the pipeline flow needs from it.

Node ids: ``app:<app>``, ``app:<app>#<shard>``, ``test:<app>:<pytest node id>``, ``step:<scenario>/<step>``,
``env:<environment>``, ``template:<name>``, ``data:<dataset>``, ``resource:<environment>.<service>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from testpilot.graph.markers import scan_markers
from testpilot.graph.model import Graph, LinkType, NodeKind, NodeStatus
from testpilot.scenarios.plan import plan_scenario
from testpilot.suite import Suite

EXECUTABLE_KINDS = frozenset({NodeKind.SHARD, NodeKind.STEP})


def app_id(app: str) -> str:
    return f"app:{app}"


def shard_id(app: str, shard: int) -> str:
    return f"app:{app}#{shard}"


def case_id(app: str, node_id: str) -> str:
    return f"test:{app}:{node_id}"


def step_id(scenario: str, step: str) -> str:
    return f"step:{scenario}/{step}"


def env_id(environment: str) -> str:
    return f"env:{environment}"


def dataset_id(dataset: str) -> str:
    return f"data:{dataset}"


def _split_test_ref(ref: str, app: str, apps: Iterable[str]) -> tuple[str, str]:
    # "payment:tests/x.py::t" names another app's test; "tests/x.py::t" stays in this app.
    head, sep, rest = ref.partition(":")
    if sep and not rest.startswith(":") and head in apps:
        return head, rest
    return app, ref


def build_graph(suite: Suite, *, scan_test_markers: bool = True) -> Graph:
    """The suite's backlink graph: apps and their shards, test-level dependencies (suite file and
    ``depends_on`` markers), scenario steps with data flow, environments, templates, services, datasets.

    Raises GraphCycleError naming the cycle and the suite fields that declared it.
    """
    g = Graph(suite.name)
    for name, env in suite.environments.items():
        g.add_node(env_id(name), NodeKind.ENVIRONMENT, name, provider=env.provider)
        template = env.settings.get("template")
        if isinstance(template, str | int):
            g.add_node(f"template:{template}", NodeKind.ENVIRONMENT, str(template), template=True)
            g.add_link(env_id(name), LinkType.DEPENDS_ON, f"template:{template}",
                       declared_in=f"environments.{name}.settings.template")
        for service, cfg in env.services.items():
            rid = f"resource:{name}.{service}"
            g.add_node(rid, NodeKind.RESOURCE, f"{service} ({cfg.type})", type=cfg.type)
            g.add_link(rid, LinkType.RUNS_ON, env_id(name), declared_in=f"environments.{name}.services")
    for name, data in suite.data.items():
        g.add_node(dataset_id(name), NodeKind.DATASET, name, version=data.version, seed=data.seed)
    for name, app in suite.apps.items():
        g.add_node(app_id(name), NodeKind.APP, name, path=app.path, owners=list(app.owners))
        pool = suite.environment_for(name)
        g.add_link(app_id(name), LinkType.RUNS_ON, env_id(pool), declared_in=f"apps.{name}.environment")
        for service in suite.environments[pool].services:
            g.add_link(app_id(name), LinkType.REQUIRES_RESOURCE, f"resource:{pool}.{service}",
                       declared_in=f"environments.{pool}.services.{service}")
        for shard in range(app.shards):
            g.add_node(shard_id(name, shard), NodeKind.SHARD, f"{name} shard {shard + 1}/{app.shards}",
                       app=name, shard=shard)
            g.add_link(shard_id(name, shard), LinkType.DEPENDS_ON, app_id(name), declared_in=f"apps.{name}")
    for name, data in suite.data.items():
        targets = list(dict.fromkeys(t.split(".", 1)[0] for t in data.targets)) or list(suite.apps)
        for target in targets:
            if target in suite.apps:
                g.add_link(app_id(target), LinkType.USES_DATASET, dataset_id(name),
                           declared_in=f"data.{name}.targets")
    cross_app: set[tuple[str, str, str]] = set()
    for name, app in suite.apps.items():
        for dep in app.depends_on:
            g.add_link(app_id(name), LinkType.DEPENDS_ON, app_id(dep), declared_in=f"apps.{name}.depends_on")
            cross_app.add((name, dep, f"apps.{name}.depends_on"))
        _add_test_dependencies(g, suite, name, scan_test_markers, cross_app)
    for name, dep, origin in sorted(cross_app):
        # A shard waits for every shard of an app it depends on: the execution form of the app link.
        for shard in range(suite.apps[name].shards):
            for other in range(suite.apps[dep].shards):
                g.add_link(shard_id(name, shard), LinkType.DEPENDS_ON, shard_id(dep, other),
                           declared_in=origin, derived=True)
    for sname, scenario in suite.scenarios.items():
        plan = plan_scenario(sname, scenario, source=suite.source)
        for step in plan.steps:
            sid = step_id(sname, step.name)
            g.add_node(sid, NodeKind.STEP, f"{sname}: {step.name}", scenario=sname, step=step.name,
                       app=step.app, test=step.test, command=step.command, outputs=dict(step.outputs))
            g.add_link(sid, LinkType.DEPENDS_ON, app_id(step.app), declared_in=f"scenarios.{sname}.steps")
        for step in plan.steps:
            sid = step_id(sname, step.name)
            producers = {b.step for b in step.inputs}
            for dep in step.needs:
                if dep not in producers:
                    g.add_link(sid, LinkType.DEPENDS_ON, step_id(sname, dep),
                               declared_in=f"scenarios.{sname}.steps")
            for producer in dict.fromkeys(b.step for b in step.inputs):
                fields = [{"flow": b.flow, "from": b.field, "to": b.name, "type": b.type}
                          for b in step.inputs if b.step == producer]
                g.add_link(step_id(sname, producer), LinkType.FEEDS, sid, fields=fields,
                           declared_in=f"scenarios.{sname}.data_flow")
    return g


def _add_test_dependencies(g: Graph, suite: Suite, app: str, scan: bool,
                           cross_app: set[tuple[str, str, str]]) -> None:
    declared: list[tuple[str, list[str], str]] = [
        (test, deps, f"apps.{app}.test_dependencies") for test, deps in suite.apps[app].test_dependencies.items()]
    if scan and suite.app_dir(app).is_dir():
        found = scan_markers(suite.app_dir(app), suite.apps[app].test_paths)
        declared += [(test, deps, f"marker in {test.split('::')[0]}") for test, deps in found.items()]
    for test, deps, origin in declared:
        tid = case_id(app, test)
        if tid not in g:
            g.add_node(tid, NodeKind.TEST, test, app=app)
            g.add_link(tid, LinkType.DEPENDS_ON, app_id(app), declared_in=f"apps.{app}")
        for dep in deps:
            dep_app, dep_test = _split_test_ref(dep, app, suite.apps)
            did = case_id(dep_app, dep_test)
            if did not in g:
                g.add_node(did, NodeKind.TEST, dep_test, app=dep_app)
                g.add_link(did, LinkType.DEPENDS_ON, app_id(dep_app), declared_in=f"apps.{dep_app}")
            g.add_link(tid, LinkType.DEPENDS_ON, did, declared_in=origin)
            if dep_app != app:
                cross_app.add((app, dep_app, origin))


def executable_dependencies(graph: Graph, kinds: Iterable[NodeKind] = EXECUTABLE_KINDS
                            ) -> dict[str, list[str]]:
    """Each executable node (shard or step) -> the executable nodes it must wait for, found through any
    chain of non-executable nodes (apps, tests, environments, datasets). Ordered so that every node
    comes after its dependencies: submit in this order and pass the lists as ``wait_for``."""
    keep = frozenset(kinds)
    frontier: dict[str, frozenset[str]] = {}
    result: dict[str, list[str]] = {}
    order = graph.topological_order()
    position = {id: i for i, id in enumerate(order)}
    for id in order:
        found: set[str] = set()
        for dep in graph.dependencies(id):
            found |= {dep} if graph.node(dep).kind in keep else frontier[dep]
        frontier[id] = frozenset(found)
        if graph.node(id).kind in keep:
            result[id] = sorted(found, key=position.__getitem__)
    return result


_FAILED = {"failed", "crashed", "error", "timedout"}
_NOT_RUN = {"skipped", "blocked", "cancelled", "cancelling", "paused"}


def skip_reason(dependencies: Iterable[str], states: Mapping[str, str],
                reasons: Mapping[str, str] | None = None) -> str | None:
    """Why a node must be skipped given its dependencies' final states (state names, any case), or None.

    A failed dependency wins over a skipped one. For a skipped dependency whose own skip reason is in
    ``reasons``, that reason is passed on, so every node downstream names the dependency that failed.
    """
    deps = list(dependencies)
    for dep in deps:
        if states.get(dep, "").lower() in _FAILED:
            return f"dependency {dep} failed"
    for dep in deps:
        state = states.get(dep, "").lower()
        if state in _NOT_RUN:
            return (reasons or {}).get(dep) or f"dependency {dep} {state}"
    return None


_STATE_TO_STATUS = {
    "completed": NodeStatus.PASSED, "passed": NodeStatus.PASSED, "cached": NodeStatus.PASSED,
    "failed": NodeStatus.FAILED, "crashed": NodeStatus.FAILED, "error": NodeStatus.FAILED,
    "timedout": NodeStatus.FAILED, "skipped": NodeStatus.SKIPPED, "blocked": NodeStatus.BLOCKED,
    "cancelled": NodeStatus.CANCELLED, "cancelling": NodeStatus.CANCELLED, "running": NodeStatus.RUNNING,
    "retrying": NodeStatus.RUNNING, "pending": NodeStatus.PENDING, "scheduled": NodeStatus.PENDING,
    "late": NodeStatus.PENDING, "paused": NodeStatus.PENDING,
}


def apply_states(graph: Graph, states: Mapping[str, str], reasons: Mapping[str, str] | None = None) -> None:
    """Set node statuses from final state names (Prefect's "Completed", "Failed", "Skipped"... or ours),
    so ``to_mermaid`` colours the run summary. Unknown names leave a node pending; ``reasons`` are kept
    in the node's metadata."""
    for id, state in states.items():
        if id in graph:
            status = _STATE_TO_STATUS.get(state.lower().replace(" ", ""), NodeStatus.PENDING)
            extra = {"reason": reasons[id]} if reasons and id in reasons else {}
            graph.set_status(id, status, **extra)
