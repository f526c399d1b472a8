"""The backlink graph: typed nodes, typed two-way links, execution order and impact.

Storage is one networkx ``DiGraph`` whose edges point from a prerequisite to the node that needs it
(the execution direction), so order, layers and impact are plain graph walks. Each edge's data dict
holds the ``Link`` objects between that pair, keyed by link type. networkx keeps that dict in both the
successor and the predecessor index, which is what stores every link together with its reverse.

Beside it, kept in sync with every edge added or removed: an integer copy of the successor index
(nodes numbered in insertion order, each list in the order of networkx's successor dict) and each
node's in-degree. Layers are computed on it with networkx's algorithm (so the same layers in the same
order), and each computation also leaves the successor index renumbered by topological position.
Impact and transitive dependents walk those small ints: a set of ints fills its slots in order, where
a walk over id strings spent most of its time on cache misses in tables of random string hashes.
Everything a node reaches comes after it in that order, so a walk that has reached every later node
stops, one that would expand far more nodes than remain unreached finishes bottom-up, and a large
answer is copied as slices of the cached order. A change under all of a 100k-node graph went from
66-165 ms to 12-21 ms (docs/benchmarks.md, Graph).
"""

from __future__ import annotations

import difflib
import gc
import json
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import filterfalse
from typing import Any

import networkx as nx

from testpilot.graph.types import (
    GraphCycleError,
    GraphError,
    Link,
    LinkType,
    Node,
    NodeKind,
    NodeStatus,
    UnknownNodeError,
)

__all__ = ["Graph", "GraphCycleError", "GraphError", "Link", "LinkType", "Node", "NodeKind", "NodeStatus",
           "UnknownNodeError"]


class Graph:
    """The backlink graph. Build it with ``add_node``/``add_link`` or ``add_nodes``/``add_links`` (bulk)."""

    def __init__(self, name: str = "testpilot") -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}
        self._g: nx.DiGraph = nx.DiGraph()
        # Insertion numbering (the order of ``_nodes``), kept in sync: id -> number, and by number the
        # direct dependents' numbers and the in-degree.
        self._ix: dict[str, int] = {}
        self._out: list[list[int]] = []
        self._indeg: list[int] = []
        # Cached until the next change: layers, insertion number -> topological position, position
        # -> id, and position -> positions of the node's direct dependents.
        self._layers: list[list[str]] | None = None
        self._rank: list[int] = []
        self._order: list[str] = []
        self._positions: frozenset[int] = frozenset()
        self._adj: list[tuple[int, ...]] = []

    # -- building -------------------------------------------------------------------------------------

    def add_node(self, id: str, kind: NodeKind | str, label: str = "", *,
                 status: NodeStatus | str | None = None, **metadata: Any) -> Node:
        """Add a node (pending unless ``status`` is given), or update an existing one's kind, and its
        label, status and metadata where given."""
        node = self._nodes.get(id)
        if node is None:
            node = Node(id, NodeKind(kind), label, NodeStatus(status or NodeStatus.PENDING), dict(metadata))
            self._nodes[id] = node
            self._g.add_node(id)
            self._number(id)
            self._invalidate()
        else:
            node.kind = NodeKind(kind)
            node.label = label or node.label
            node.status = NodeStatus(status) if status is not None else node.status
            node.metadata.update(metadata)
        return node

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        """Bulk add; replaces nodes with the same id."""
        with _gc_paused():
            known, ix = self._nodes, self._ix
            before = len(ix)
            for node in nodes:
                id = node.id
                known[id] = node
                if id not in ix:
                    ix[id] = len(ix)
            self._out.extend([] for _ in range(len(ix) - before))
            self._indeg.extend([0] * (len(ix) - before))
            self._g.add_nodes_from(known)
        self._invalidate()

    def _number(self, id: str) -> None:
        self._ix[id] = len(self._ix)
        self._out.append([])
        self._indeg.append(0)

    def add_link(self, source: str, type: LinkType | str, target: str, **metadata: Any) -> Link:
        """Add ``source --type--> target`` (replacing the same-type link between the pair).

        Raises GraphCycleError, leaving the graph unchanged, when the link would close a cycle.
        """
        link = Link(source, target, LinkType(type), dict(metadata))
        self._require(source)
        self._require(target)
        before, after = link.prerequisite, link.dependent
        if before == after:
            raise GraphCycleError([before, before], [link])
        path = self._path(after, before)
        if path is not None:
            # path runs after ~> before in execution order; read backwards it is the "needs" chain,
            # which the new link (after needs before) closes.
            needs = [after, *reversed(path)]
            raise GraphCycleError(needs, [link, *self._links_along(path)])
        self._store(link)
        self._invalidate()
        return link

    def add_links(self, links: Iterable[Link]) -> None:
        """Bulk add with one cycle check at the end; on a cycle the whole batch is rolled back."""
        # Writes the shared edge dict straight into networkx's successor/predecessor maps: about 1.3x
        # faster than has_edge + add_edge per link at 300k links (see docs/benchmarks.md).
        added: list[tuple[str, str, LinkType, Link | None]] = []
        succ, pred, nodes = self._g._succ, self._g._pred, self._nodes
        ix, out, indeg = self._ix, self._out, self._indeg
        feeds = LinkType.FEEDS
        self._invalidate()
        try:
            with _gc_paused():
                for link in links:
                    if link.type is feeds:
                        u, v = link.source, link.target
                    else:
                        u, v = link.target, link.source
                    if u not in nodes or v not in nodes:
                        self._require(u)
                        self._require(v)
                    data = succ[u].get(v)
                    if data is None:
                        data = succ[u][v] = pred[v][u] = {}
                        iv = ix[v]
                        out[ix[u]].append(iv)
                        indeg[iv] += 1
                    added.append((u, v, link.type, data.get(link.type)))
                    data[link.type] = link
                self.layers()
        except GraphError:
            self._rollback(added)
            raise

    def _store(self, link: Link) -> None:
        u, v = link.prerequisite, link.dependent
        if not self._g.has_edge(u, v):
            self._g.add_edge(u, v)
            self._out[self._ix[u]].append(self._ix[v])
            self._indeg[self._ix[v]] += 1
        self._g._succ[u][v][link.type] = link

    def _rollback(self, added: list[tuple[str, str, LinkType, Link | None]]) -> None:
        dropped: dict[int, set[int]] = {}
        for u, v, type_, previous in reversed(added):
            data = self._g._succ[u][v]
            if previous is None:
                del data[type_]
                if not data:
                    self._g.remove_edge(u, v)
                    dropped.setdefault(self._ix[u], set()).add(self._ix[v])
            else:
                data[type_] = previous
        # One pass per source node rather than list.remove per link: a batch of 100k links into one
        # hub would otherwise roll back in quadratic time.
        for iu, gone in dropped.items():
            self._out[iu] = [iv for iv in self._out[iu] if iv not in gone]
            for iv in gone:
                self._indeg[iv] -= 1
        self._invalidate()

    def remove_link(self, source: str, type: LinkType | str, target: str) -> None:
        """Remove ``source --type--> target``; GraphError when there is no such link."""
        probe = Link(source, target, LinkType(type))
        u, v = probe.prerequisite, probe.dependent
        data = self._g._succ.get(u, {}).get(v)
        if not data or probe.type not in data:
            raise GraphError(f"no link {probe.describe()}")
        del data[probe.type]
        if not data:
            self._g.remove_edge(u, v)
            self._out[self._ix[u]].remove(self._ix[v])
            self._indeg[self._ix[v]] -= 1
        self._invalidate()

    def set_status(self, id: str, status: NodeStatus | str, **metadata: Any) -> None:
        """Set a node's status; keyword arguments (e.g. ``reason=``) go into its metadata."""
        node = self.node(id)
        node.status = NodeStatus(status)
        node.metadata.update(metadata)

    def _invalidate(self) -> None:
        self._layers = None
        self._rank = []
        self._positions = frozenset()
        self._order = []
        self._adj = []

    # -- lookups --------------------------------------------------------------------------------------

    def __contains__(self, id: object) -> bool:
        return id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name == other.name and self._nodes == other._nodes
                and sorted(map(_link_key, self.links())) == sorted(map(_link_key, other.links())))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def node(self, id: str) -> Node:
        """The node with this id; UnknownNodeError (with close ids) when there is none."""
        self._require(id)
        return self._nodes[id]

    def nodes(self, kind: NodeKind | str | None = None) -> list[Node]:
        """All nodes in insertion order, or those of one kind."""
        if kind is None:
            return list(self._nodes.values())
        kind = NodeKind(kind)
        return [n for n in self._nodes.values() if n.kind is kind]

    def links(self, type: LinkType | str | None = None) -> Iterator[Link]:
        """Every link once, optionally of one type."""
        wanted = LinkType(type) if type is not None else None
        for _, _, data in self._g.edges(data=True):
            for link in data.values():
                if wanted is None or link.type is wanted:
                    yield link

    def links_from(self, id: str, type: LinkType | str | None = None) -> list[Link]:
        """Links whose source is ``id`` (``id --type--> x``), optionally of one type."""
        return [link for link in self._touching(id, type) if link.source == id]

    def links_to(self, id: str, type: LinkType | str | None = None) -> list[Link]:
        """Backlinks: links whose target is ``id`` (``x --type--> id``), optionally of one type."""
        return [link for link in self._touching(id, type) if link.target == id]

    def links_of(self, id: str, type: LinkType | str | None = None) -> list[Link]:
        """Every link to or from ``id`` (its links and backlinks), optionally of one type."""
        return list(self._touching(id, type))

    def _touching(self, id: str, type: LinkType | str | None) -> Iterator[Link]:
        self._require(id)
        wanted = LinkType(type) if type is not None else None
        for adjacency in (self._g._pred[id], self._g._succ[id]):
            for data in adjacency.values():
                for link in data.values():
                    if wanted is None or link.type is wanted:
                        yield link

    def _require(self, id: str) -> None:
        if id not in self._nodes:
            raise UnknownNodeError(id, difflib.get_close_matches(id, list(self._nodes), n=3))

    # -- queries --------------------------------------------------------------------------------------

    def dependencies(self, id: str, *, transitive: bool = False) -> list[str]:
        """What ``id`` needs first (direct prerequisites, or all of them), in execution order."""
        self._require(id)
        found = nx.ancestors(self._g, id) if transitive else set(self._g._pred[id])
        return self._ordered(found)

    def dependents(self, id: str, *, transitive: bool = False) -> list[str]:
        """What needs ``id`` (directly, or through any chain), in execution order."""
        self._require(id)
        if not transitive:
            return self._ordered(set(self._g._succ[id]))
        found = self._reach(id)
        return found[1:]  # the walk's start, ``id``, is first: it precedes everything it reaches

    def dependency_chain(self, id: str) -> list[str]:
        """Execution order to run ``id``: all its prerequisites, then ``id`` itself."""
        return [*self.dependencies(id, transitive=True), id]

    def impact(self, id: str, kinds: Iterable[NodeKind | str] | None = None) -> list[str]:
        """What must re-run when ``id`` changes: ``id`` and everything depending on it, in execution
        order; ``kinds`` keeps only nodes of those kinds (e.g. shards and steps)."""
        self._require(id)
        found = self._reach(id)
        if kinds is not None:
            keep = {NodeKind(k) for k in kinds}
            nodes = self._nodes
            found = [n for n in found if nodes[n].kind in keep]
        return found

    def _reach(self, start: str) -> list[str]:
        """``start`` and every node reachable from it in execution direction, in topological order.

        A level-by-level BFS over topological positions, where ``set.union`` over the position
        tuples does the inner loop in C; positions are small ints, so the sets' slots follow the ints
        and ``sorted`` puts the answer in execution order. Everything reachable comes after ``start``
        in that order. So the walk stops once every later node is reached, and when the next level
        would expand many more nodes than are still unreached, it finishes bottom-up instead
        (direction-optimizing BFS): the last level of a change under nearly the whole graph follows
        every link out of ~100k nodes only to find nodes already seen."""
        self.layers()
        first = self._rank[self._ix[start]]
        adj = self._adj.__getitem__
        later = len(self._order) - first  # start and every node after it: the most the walk can reach
        seen = {first}
        frontier = {first}
        while frontier and len(seen) < later:
            # Costs measured per node: ~300 ns to expand a frontier node, ~30 ns to skip a reached
            # position and ~500 ns to check an unreached one bottom-up.
            if len(frontier) * 10 > later + (later - len(seen)) * 20:
                return self._answer(first, self._reach_bottom_up(first, seen))
            level = set().union(*map(adj, frontier))
            level -= seen
            seen |= level
            frontier = level
        if len(seen) == later:
            return self._order[first:]
        if (later - len(seen)) * 8 < len(seen):
            return self._answer(first, self._unreached(first, seen))
        return list(map(self._order.__getitem__, sorted(seen)))

    def _unreached(self, first: int, seen: set[int]) -> list[int]:
        """The positions after ``first`` not in ``seen``, in order."""
        if first * 2 > len(self._order):  # fewer positions after first than before: test each
            return list(filterfalse(seen.__contains__, range(first + 1, len(self._order))))
        return sorted(p for p in self._positions - seen if p > first)

    def _reach_bottom_up(self, first: int, seen: set[int]) -> list[int]:
        """Add to ``seen`` every position after ``first`` that has a prerequisite in ``seen``, in one
        pass in execution order: a node's prerequisites all come before it, so by the time it is
        checked, each of them is settled. Returns the positions left unreached, in order."""
        rank, ix, order, pred = self._rank, self._ix, self._order, self._g._pred
        unreached = []
        for p in self._unreached(first, seen):
            if any(rank[ix[q]] in seen for q in pred[order[p]]):
                seen.add(p)
            else:
                unreached.append(p)
        return unreached

    def _answer(self, first: int, unreached: list[int]) -> list[str]:
        """The ids at positions ``first`` onwards but ``unreached`` (ordered): copied as slices, which
        costs a tenth of looking 100k positions up one by one."""
        order = self._order
        answer: list[str] = []
        start = first
        for gap in unreached:
            answer += order[start:gap]
            start = gap + 1
        answer += order[start:]
        return answer

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A path start ~> goal in execution direction, or None."""
        succ = self._g._succ
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            cur = queue.popleft()
            if cur == goal:
                path = [cur]
                while (prev := parent[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            for nxt in succ[cur]:
                if nxt not in parent:
                    parent[nxt] = cur
                    queue.append(nxt)
        return None

    def _links_along(self, path: list[str]) -> list[Link]:
        return [next(iter(self._g._succ[u][v].values())) for u, v in zip(path, path[1:], strict=False)]

    def layers(self) -> list[list[str]]:
        """Topological layers: every node's prerequisites are in earlier layers, so each layer can run
        in parallel. Raises GraphCycleError naming a cycle."""
        if self._layers is None:
            with _gc_paused():
                self._compute_layers()
        assert self._layers is not None
        return self._layers

    def _compute_layers(self) -> None:
        # networkx's topological_generations on the integer copy: the same layers in the same order
        # (roots in insertion order, dependents in successor-dict order; see
        # tests/graph/test_graph_queries_match_networkx.py). Then the copy renumbered by position.
        out = self._out
        left = self._indeg.copy()
        layer = [i for i, d in enumerate(left) if not d]
        layers: list[list[int]] = []
        done = 0
        while layer:
            layers.append(layer)
            done += len(layer)
            following = []
            for u in layer:
                for v in out[u]:
                    left[v] -= 1
                    if not left[v]:
                        following.append(v)
            layer = following
        if done < len(out):
            cycle_edges = nx.find_cycle(self._g)
            path = [u for u, _ in cycle_edges]
            needs = [*reversed(path), path[-1]]
            raise GraphCycleError(needs, self._links_along([*path, path[0]]))
        ids = list(self._nodes).__getitem__
        self._layers = [list(map(ids, layer)) for layer in layers]
        numbers = [i for layer in layers for i in layer]
        self._order = list(map(ids, numbers))
        self._rank = rank = [0] * len(numbers)
        for p, i in enumerate(numbers):
            rank[i] = p
        at = rank.__getitem__
        self._adj = [tuple(map(at, out[i])) for i in numbers]
        self._positions = frozenset(range(len(numbers)))

    def topological_order(self) -> list[str]:
        """All node ids, each after its prerequisites (the layers, flattened)."""
        self.layers()
        return list(self._order)

    def _ordered(self, ids: set[str]) -> list[str]:
        self.layers()
        if len(ids) * 8 > len(self._order):
            # Large answers: one pass over the cached order beats sorting by key.
            return [n for n in self._order if n in ids]
        rank, ix = self._rank, self._ix
        return sorted(ids, key=lambda n: rank[ix[n]])

    def stats(self) -> dict[str, Any]:
        """Counts by kind, status and link type, plus roots, leaves and depth (number of layers)."""
        by_type: Counter[str] = Counter()
        for _, _, data in self._g.edges(data=True):
            by_type.update(t.value for t in data)
        g = self._g
        return {
            "nodes": len(self._nodes),
            "links": sum(by_type.values()),
            "by_kind": dict(Counter(n.kind.value for n in self._nodes.values())),
            "by_status": dict(Counter(n.status.value for n in self._nodes.values())),
            "by_link_type": dict(by_type),
            "roots": sum(1 for n in g if not g._pred[n]),
            "leaves": sum(1 for n in g if not g._succ[n]),
            "depth": len(self.layers()),
        }

    def subgraph(self, ids: Iterable[str]) -> Graph:
        """A copy holding only ``ids`` and the links among them."""
        keep = set(ids)
        sub = Graph(self.name)
        sub.add_nodes(Node(n.id, n.kind, n.label, n.status, dict(n.metadata))
                      for n in self._nodes.values() if n.id in keep)
        sub.add_links(Link(link.source, link.target, link.type, dict(link.metadata))
                      for link in self.links() if link.source in keep and link.target in keep)
        return sub


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A bulk load allocates hundreds of thousands of container objects and nothing cyclic; the cyclic
    # collector's repeated full passes over them cost 4x the load itself at 300k links.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _link_key(link: Link) -> tuple[str, str, str, str]:
    return (link.source, link.target, link.type.value, json.dumps(link.metadata, sort_keys=True))
