"""Backlink graph at scale: 100,000 nodes and 300,000 links shaped like a large suite.

Targets (issue 3): build + topological order <= 2 s; an impact query <= 50 ms, including the worst
case, a node that everything depends on. The naive way for the ratio is the seed's dict-of-lists model
(every test keeps a list of what it needs; "who depends on X" scans all of them), run in the same
process on the same graphs; for the worst case it is extrapolated from one scan (it would take 20
minutes or more), and the networkx way (``nx.descendants`` + sort) is measured too.

Run: uv run python bench/graph.py [--quick]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from testpilot.graph import Graph, Link, LinkType, Node, NodeKind

Record = tuple[str, NodeKind]
LinkRecord = tuple[str, LinkType, str]


def suite_shaped(n_nodes: int, n_links: int, seed: int = 0) -> tuple[list[Record], list[LinkRecord]]:
    """Templates -> environments -> apps (in product groups, depending on apps of their group) -> shards,
    scenario steps and tests; tests depend on their app and on 1-3 earlier tests of the same app."""
    rng = random.Random(seed)
    scale = n_nodes / 100_000
    nodes: list[Record] = []
    links: list[LinkRecord] = []
    templates = [f"template:t{i}" for i in range(max(2, int(10 * scale)))]
    envs = [f"env:e{i}" for i in range(max(2, int(40 * scale)))]
    resources = [f"resource:r{i}" for i in range(max(2, int(100 * scale)))]
    datasets = [f"data:d{i}" for i in range(max(2, int(200 * scale)))]
    apps = [f"app:a{i}" for i in range(max(4, int(1000 * scale)))]
    nodes += [(t, NodeKind.ENVIRONMENT) for t in templates + envs]
    nodes += [(r, NodeKind.RESOURCE) for r in resources] + [(d, NodeKind.DATASET) for d in datasets]
    nodes += [(a, NodeKind.APP) for a in apps]
    links += [(e, LinkType.DEPENDS_ON, templates[i % len(templates)]) for i, e in enumerate(envs)]
    links += [(r, LinkType.RUNS_ON, envs[i % len(envs)]) for i, r in enumerate(resources)]
    group = 20
    for i, app in enumerate(apps):
        env = (i // group) % len(envs)
        links.append((app, LinkType.RUNS_ON, envs[env]))
        links.append((app, LinkType.REQUIRES_RESOURCE, resources[env % len(resources)]))
        links += [(app, LinkType.USES_DATASET, d) for d in rng.sample(datasets, 2)]
        first = i - i % group
        for dep in {rng.randrange(first, i) for _ in range(rng.randint(0, 2))} if i > first else ():
            links.append((app, LinkType.DEPENDS_ON, apps[dep]))
            links += [(f"{app}#{s}", LinkType.DEPENDS_ON, f"{apps[dep]}#{t}") for s in range(2) for t in range(2)]
    for app in apps:
        for s in range(2):
            nodes.append((f"{app}#{s}", NodeKind.SHARD))
            links.append((f"{app}#{s}", LinkType.DEPENDS_ON, app))
    for sc in range(int(500 * scale)):
        steps = [f"step:s{sc}/{k}" for k in range(6)]
        for k, step in enumerate(steps):
            nodes.append((step, NodeKind.STEP))
            links.append((step, LinkType.DEPENDS_ON, rng.choice(apps)))
            if k:
                links.append((steps[k - 1], LinkType.FEEDS, step))
    per_app: dict[str, list[str]] = {a: [] for a in apps}
    remaining = n_nodes - len(nodes)
    tests = []
    for i in range(remaining):
        app = apps[i % len(apps)]
        tid = f"test:{app}:tests/test_m{i % 17}.py::test_case_{i}"
        tests.append((tid, app))
        nodes.append((tid, NodeKind.TEST))
        links.append((tid, LinkType.DEPENDS_ON, app))
    budget = n_links - len(links)
    per_test = budget / max(1, len(tests))
    linked: dict[str, set[str]] = {}
    for tid, app in tests:
        earlier = per_app[app][-30:]
        k = min(len(earlier), int(per_test) + (rng.random() < per_test % 1))
        linked[tid] = set(rng.sample(earlier, k))
        links += [(tid, LinkType.DEPENDS_ON, d) for d in linked[tid]]
        per_app[app].append(tid)
    while len(links) < n_links:  # top up to the exact count with more distinct test dependencies
        tid, app = rng.choice(tests)
        earlier = [d for d in per_app[app][: per_app[app].index(tid)][-30:] if d not in linked[tid]]
        if earlier:
            dep = rng.choice(earlier)
            linked[tid].add(dep)
            links.append((tid, LinkType.DEPENDS_ON, dep))
    return nodes, links[:n_links]


def build(nodes: list[Record], links: list[LinkRecord]) -> Graph:
    g = Graph("bench")
    g.add_nodes(Node(i, k) for i, k in nodes)
    g.add_links(Link(s, t, ty) for s, ty, t in links)
    g.topological_order()
    return g


class NaivePilot:
    """The seed's model: a dict of tests, each with a list of what it needs; queries scan the lists."""

    def __init__(self, nodes: list[Record], links: list[LinkRecord]) -> None:
        self.needs: dict[str, list[str]] = {i: [] for i, _ in nodes}
        for s, ty, t in links:
            if ty is LinkType.FEEDS:
                self.needs[t].append(s)
            else:
                self.needs[s].append(t)

    def dependents(self, id: str) -> list[str]:
        return [t for t, needs in self.needs.items() if id in needs]

    def impact(self, id: str) -> list[str]:
        seen, todo = {id}, [id]
        while todo:
            for d in self.dependents(todo.pop()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return list(seen)

    def order(self) -> list[str]:
        done: set[str] = set()
        out: list[str] = []
        left = list(self.needs)
        while left:
            ready = [n for n in left if all(d in done for d in self.needs[n])]
            out += ready
            done.update(ready)
            left = [n for n in left if n not in done]
        return out


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def impact_medians(g: Graph, ids: Iterable[str]) -> tuple[float, float, int]:
    times, sizes = [], []
    for id in ids:
        t, result = timed(lambda id=id: g.impact(id), 3)
        times.append(t)
        sizes.append(len(result))
    return statistics.median(times), max(times), int(statistics.median(sizes))


def main() -> None:
    quick = "--quick" in sys.argv
    n, m = (20_000, 60_000) if quick else (100_000, 300_000)
    rng = random.Random(1)
    nodes, links = suite_shaped(n, m)
    print(f"graph: {len(nodes):,} nodes, {len(links):,} links (suite-shaped, seed 0)")
    t_build, g = timed(lambda: build(nodes, links), 3)
    print(f"build + topological order     {ms(t_build)}   target <= 2000 ms   {len(g.layers())} layers")
    t_layers, _ = timed(lambda: (g._invalidate(), g.layers()), 3)
    print(f"  of which topological layers {ms(t_layers)}")
    by_kind: dict[NodeKind, list[str]] = {}
    for id, kind in nodes:
        by_kind.setdefault(kind, []).append(id)
    print("impact query (median of 20 nodes x 3 runs; max; median answer size):")
    worst = 0.0
    for kind in (NodeKind.TEST, NodeKind.APP, NodeKind.DATASET, NodeKind.ENVIRONMENT):
        sample = rng.sample(by_kind[kind], min(20, len(by_kind[kind])))
        med, mx, size = impact_medians(g, sample)
        worst = max(worst, mx)
        print(f"  {kind.value:<12} {ms(med)}   max {ms(mx)}   {size:>6} nodes")
    root = max(by_kind[NodeKind.ENVIRONMENT], key=lambda t: len(g.impact(t)))
    t_root, res = timed(lambda: g.impact(root), 3)
    print(f"  largest template/env {root}: {ms(t_root)} for {len(res):,} nodes")
    print(f"impact target <= 50 ms: {'met' if worst <= 0.05 else 'MISSED'} (slowest sampled query {ms(worst).strip()})")
    # Worst case: one node under everything, so the answer is all 100k nodes and the walk meets every link.
    base_links = [(t, LinkType.DEPENDS_ON, "template:base") for t in by_kind[NodeKind.ENVIRONMENT]
                  if t.startswith("template:")]
    base_links += [(d, LinkType.DEPENDS_ON, "template:base") for d in by_kind[NodeKind.DATASET]]
    g.add_node("template:base", NodeKind.ENVIRONMENT)
    g.add_links(Link(s, t, ty) for s, ty, t in base_links)
    g.topological_order()
    t_all, res = timed(lambda: g.impact("template:base"), 9)
    print(f"worst case, one node under everything (median of 9): {ms(t_all)} for {len(res):,} nodes   "
          f"target <= 50 ms: {'met' if t_all <= 0.05 else 'MISSED'}")
    # The networkx way on the same links: nx.descendants, then sorted into execution order.
    ref = nx.DiGraph((link.prerequisite, link.dependent) for link in g.links())
    position = {id: i for i, id in enumerate(g.topological_order())}

    def nx_impact(id: str) -> list[str]:
        return sorted(nx.descendants(ref, id) | {id}, key=position.__getitem__)

    t_nx, res_nx = timed(lambda: nx_impact("template:base"), 9)
    assert res_nx == res
    # The naive way would scan all 100k lists once per affected node (100k scans, 20 minutes or more):
    # time one scan and multiply, and say so.
    naive_all = NaivePilot(nodes + [("template:base", NodeKind.ENVIRONMENT)], links + base_links)
    t_scan = statistics.median(timed(lambda x=x: naive_all.dependents(x), 1)[0]
                               for x in rng.sample(by_kind[NodeKind.TEST], 5))
    t_naive_all = t_scan * len(res)
    print(f"  networkx descendants + sort: {ms(t_nx)}  ratio {t_nx / t_all:,.1f}x;  naive (extrapolated: "
          f"{len(res):,} scans x {ms(t_scan).strip()}): {t_naive_all:,.0f} s  ratio {t_naive_all / t_all:,.0f}x")
    # Everything but one node: an unrelated node after the start in execution order, so the walk
    # cannot stop early; it finishes bottom-up instead of following every link out of the 98k tests.
    g.add_node("template:unrelated", NodeKind.ENVIRONMENT)
    g.topological_order()
    t_most, res = timed(lambda: g.impact("template:base"), 9)
    print(f"  everything but one unrelated node (no early stop; bottom-up finish): {ms(t_most)} for {len(res):,} nodes")

    # Side by side with the naive dict-of-lists way, same process, same graphs.
    naive = NaivePilot(nodes, links)
    tests = rng.sample(by_kind[NodeKind.TEST], 5)
    t_naive_imp = statistics.median(timed(lambda t=t: naive.impact(t), 1)[0] for t in tests)
    t_our_imp = statistics.median(timed(lambda t=t: g.impact(t), 3)[0] for t in tests)
    assert all(sorted(naive.impact(t)) == sorted(g.impact(t)) for t in tests[:2])
    print(f"naive impact of a test ({n:,} nodes): {ms(t_naive_imp)}  vs {ms(t_our_imp)}  "
          f"ratio {t_naive_imp / t_our_imp:,.0f}x")
    t_naive_order, order = timed(lambda: NaivePilot(nodes, links).order(), 1)
    assert len(order) == len(g.topological_order()) - 2  # template:base and template:unrelated
    print(f"naive build + order ({n:,} nodes): {ms(t_naive_order)}  vs {ms(t_build)}  "
          f"ratio {t_naive_order / t_build:,.1f}x")


if __name__ == "__main__":
    main()
