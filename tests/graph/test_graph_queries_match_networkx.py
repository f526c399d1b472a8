"""Layers, impact and transitive queries agree with networkx on the same edits.

The graph keeps an integer copy of its links for fast walks (see testpilot/graph/model.py); these tests
replay random edits (single and bulk adds, removals, batches rolled back on a cycle) on a Graph and on
a plain networkx DiGraph and compare every answer, order included.
"""

from __future__ import annotations

import random

import networkx as nx
import pytest

from testpilot.graph import Graph, GraphCycleError, Link, LinkType, Node, NodeKind

TYPES = [LinkType.DEPENDS_ON, LinkType.RUNS_ON, LinkType.FEEDS, LinkType.USES_DATASET]


def _reference_answers(g: Graph, ref: nx.DiGraph, sample: list[str]) -> None:
    expected_layers = [list(layer) for layer in nx.topological_generations(ref)]
    assert g.layers() == expected_layers
    position = {n: i for i, n in enumerate(n for layer in expected_layers for n in layer)}
    assert g.topological_order() == sorted(position, key=position.__getitem__)
    for id in sample:
        below = sorted(nx.descendants(ref, id), key=position.__getitem__)
        above = sorted(nx.ancestors(ref, id), key=position.__getitem__)
        assert g.impact(id) == [id, *below], id
        assert g.dependents(id, transitive=True) == below, id
        assert g.dependencies(id, transitive=True) == above, id
        assert g.impact(id, kinds=[NodeKind.SHARD]) == [n for n in [id, *below] if g.node(n).kind is NodeKind.SHARD]


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_give_networkx_answers(seed: int) -> None:
    rng = random.Random(seed)
    g, ref = Graph(), nx.DiGraph()
    ids = [f"n{i}" for i in range(60)]
    rng.shuffle(ids)  # insertion order differs from the names' order
    kinds = [NodeKind.TEST, NodeKind.SHARD, NodeKind.APP]
    for id in ids[:20]:
        g.add_node(id, rng.choice(kinds))
        ref.add_node(id)
    g.add_nodes(Node(id, rng.choice(kinds)) for id in ids[20:])
    ref.add_nodes_from(ids[20:])
    rank = {id: i for i, id in enumerate(sorted(ids))}  # links only from higher to lower rank: a DAG

    def random_link() -> Link:
        a, b = rng.sample(ids, 2)
        dependent, prerequisite = (a, b) if rank[a] > rank[b] else (b, a)
        kind = rng.choice(TYPES)
        if kind is LinkType.FEEDS:
            return Link(prerequisite, dependent, kind)
        return Link(dependent, prerequisite, kind)

    for _round in range(8):
        for _ in range(15):  # one by one
            link = random_link()
            g.add_link(link.source, link.type, link.target)
            ref.add_edge(link.prerequisite, link.dependent)
        batch = [random_link() for _ in range(25)]  # in bulk
        g.add_links(batch)
        for link in batch:
            if not ref.has_edge(link.prerequisite, link.dependent):
                ref.add_edge(link.prerequisite, link.dependent)
        # a batch that closes a cycle is rolled back whole, new edges and extra link types alike
        doomed = [random_link() for _ in range(10)]
        first = doomed[0]
        doomed.append(Link(first.prerequisite, first.dependent, LinkType.DEPENDS_ON))  # first, reversed
        with pytest.raises(GraphCycleError):
            g.add_links(doomed)
        links = list(g.links())
        for link in rng.sample(links, min(6, len(links))):  # removals, some emptying an edge
            g.remove_link(link.source, link.type, link.target)
            if not any(x.prerequisite == link.prerequisite and x.dependent == link.dependent
                       for x in g.links_from(link.source) + g.links_to(link.source)):
                ref.remove_edge(link.prerequisite, link.dependent)
        _reference_answers(g, ref, rng.sample(ids, 12))


def test_change_under_everything_and_the_nodes_it_cannot_reach() -> None:
    # The walk stops early once every node after the start (in execution order) is reached; these
    # check the answer both when that happens and when some later node is out of reach.
    g = Graph()
    g.add_node("base", NodeKind.ENVIRONMENT)
    for i in range(5):
        g.add_node(f"app{i}", NodeKind.APP)
        g.add_link(f"app{i}", "runs_on", "base")
        g.add_node(f"app{i}#0", NodeKind.SHARD)
        g.add_link(f"app{i}#0", "depends_on", f"app{i}")
    everything = g.topological_order()
    assert g.impact("base") == everything and everything[0] == "base"
    assert g.dependents("base", transitive=True) == everything[1:]
    g.add_node("lonely", NodeKind.APP)  # a root after "base": never reached from it
    assert g.impact("base") == everything
    g.add_node("other", NodeKind.APP)
    g.add_link("app4#0", "depends_on", "other")  # a prerequisite "base" does not reach
    assert "other" not in g.impact("base") and "app4#0" in g.impact("base")
    assert g.impact("other") == ["other", "app4#0"]
    assert g.impact("app4#0") == ["app4#0"] and g.dependents("app4#0", transitive=True) == []


def test_wide_change_finishes_bottom_up_with_the_same_answer() -> None:
    # 100 apps on one template make a wide first level and leave few nodes unreached, so the walk
    # finishes by checking the unreached nodes' prerequisites: a chain behind one app (b, then c,
    # each reached only through the one before), a node that also needs an unrelated root, and two
    # nodes "base" cannot reach.
    g = Graph()
    g.add_node("base", NodeKind.ENVIRONMENT)
    g.add_nodes(Node(f"app{i}", NodeKind.APP) for i in range(100))
    g.add_links(Link(f"app{i}", "base", LinkType.RUNS_ON) for i in range(100))
    g.add_node("other", NodeKind.ENVIRONMENT)
    for id, needs in [("b", ["app0"]), ("c", ["b"]), ("mixed", ["other", "c"]), ("only_other", ["other"])]:
        g.add_node(id, NodeKind.SHARD)
        for need in needs:
            g.add_link(id, "depends_on", need)
    ref = nx.DiGraph((link.prerequisite, link.dependent) for link in g.links())
    _reference_answers(g, ref, ["base", "app0", "other", "b"])
    assert g.impact("base")[-3:] == ["b", "c", "mixed"]
    assert g.impact("base", kinds=["shard"]) == ["b", "c", "mixed"]
