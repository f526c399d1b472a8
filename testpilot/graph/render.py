"""What ``testpilot graph [--impact NODE] [--format text|mermaid|dot|json]`` prints."""

from __future__ import annotations

from typing import Literal

from testpilot.graph.build import build_graph
from testpilot.graph.export import backlinks_text, to_dot, to_json, to_mermaid
from testpilot.graph.model import Graph, GraphError, NodeKind, UnknownNodeError
from testpilot.suite import Suite

Format = Literal["text", "mermaid", "dot", "json"]
FORMATS: tuple[str, ...] = ("text", "mermaid", "dot", "json")
_PREFIXES = ("app:", "step:", "env:", "template:", "data:", "resource:", "test:")


def resolve_node(graph: Graph, name: str) -> str:
    """A node id from what a user typed: the id itself, or a bare name such as ``payment`` for
    ``app:payment``. Raises UnknownNodeError with suggestions."""
    if name in graph:
        return name
    matches = [p + name for p in _PREFIXES if p + name in graph]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise GraphError(f"{name!r} is ambiguous", hint=f"write one of {', '.join(matches)}")
    import difflib

    ids = [n.id for n in graph.nodes()]
    close = difflib.get_close_matches(name, ids, n=3) or difflib.get_close_matches(
        name, [i.split(":", 1)[-1] for i in ids], n=3)
    raise UnknownNodeError(name, close)


def _text(graph: Graph) -> str:
    stats = graph.stats()
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(stats["by_kind"].items()))
    out = [f"{graph.name}: {stats['nodes']} nodes ({kinds}), {stats['links']} links, "
           f"{stats['depth']} layers"]
    for i, layer in enumerate(graph.layers()):
        out.append(f"layer {i}:")
        for id in layer:
            node = graph.node(id)
            needs = ", ".join(f"{link.type.value} {link.target}" for link in graph.links_from(id))
            out.append(f"  {id} [{node.kind.value}]" + (f"  ({needs})" if needs else ""))
    return "\n".join(out) + "\n"


def _impact_text(graph: Graph, changed: str) -> str:
    impacted = graph.impact(changed)[1:]
    runnable = [n for n in impacted if graph.node(n).kind in (NodeKind.SHARD, NodeKind.STEP)]
    out = [f"changing {changed} affects {len(impacted)} node(s); {len(runnable)} must re-run:"]
    out += [f"  {n} [{graph.node(n).kind.value}]" for n in runnable]
    others = [n for n in impacted if n not in set(runnable)]
    if others:
        out.append("also affected: " + ", ".join(others))
    return "\n".join(out) + "\n" + "\n" + backlinks_text(graph, changed)


def render_graph(suite: Suite, impact: str | None = None, fmt: Format | str = "text") -> str:
    """The whole graph, or with ``impact`` the part that must re-run when that node changes, in one of
    FORMATS. Raises GraphError (exit code 2) for an unknown node or format."""
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    graph = build_graph(suite)
    if impact is not None:
        changed = resolve_node(graph, impact)
        if fmt == "text":
            return _impact_text(graph, changed)
        graph = graph.subgraph(graph.impact(changed))
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "json":
        return to_json(graph) + "\n"
    return _text(graph)
