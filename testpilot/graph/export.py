"""Graph exports: JSON (exact round trip), Mermaid (node states as classes), Graphviz DOT, and a
text view of one node's links and backlinks."""

from __future__ import annotations

import json
from typing import Any

from testpilot.graph.model import Graph, GraphError, Link, LinkType, Node, NodeKind, NodeStatus

FORMAT_VERSION = 1


def to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "name": graph.name,
        "nodes": [{"id": n.id, "kind": n.kind.value, "label": n.label, "status": n.status.value,
                   "metadata": n.metadata} for n in graph.nodes()],
        "links": [{"source": link.source, "target": link.target, "type": link.type.value,
                   "metadata": link.metadata} for link in graph.links()],
    }


def from_dict(data: dict[str, Any]) -> Graph:
    if data.get("version") != FORMAT_VERSION:
        raise GraphError(f"unsupported graph format version {data.get('version')!r}",
                         hint=f"export it again with this Testpilot (format {FORMAT_VERSION})")
    graph = Graph(data.get("name", "testpilot"))
    graph.add_nodes(Node(n["id"], NodeKind(n["kind"]), n.get("label", ""), NodeStatus(n["status"]),
                         dict(n.get("metadata", {}))) for n in data["nodes"])
    graph.add_links(Link(e["source"], e["target"], LinkType(e["type"]), dict(e.get("metadata", {})))
                    for e in data["links"])
    return graph


def to_json(graph: Graph, *, indent: int | None = 2) -> str:
    """JSON text; ``to_json(from_json(s)) == s`` and ``from_json(to_json(g)) == g``."""
    return json.dumps(to_dict(graph), indent=indent, ensure_ascii=False)


def from_json(text: str) -> Graph:
    return from_dict(json.loads(text))


# Fill / stroke per state, shared by Mermaid and DOT so the run summary and `testpilot graph` agree.
STATE_COLOURS: dict[NodeStatus, tuple[str, str]] = {
    NodeStatus.PENDING: ("#eeeeee", "#999999"),
    NodeStatus.RUNNING: ("#cfe2ff", "#0d6efd"),
    NodeStatus.PASSED: ("#d1f2d6", "#198754"),
    NodeStatus.FAILED: ("#f8d0d0", "#dc3545"),
    NodeStatus.SKIPPED: ("#fff3c4", "#b8860b"),
    NodeStatus.BLOCKED: ("#ffe0c2", "#fd7e14"),
    NodeStatus.CANCELLED: ("#dddddd", "#555555"),
}

_MERMAID_SHAPES = {
    NodeKind.APP: ("[[", "]]"),
    NodeKind.SHARD: ("[", "]"),
    NodeKind.TEST: ("(", ")"),
    NodeKind.STEP: ("([", "])"),
    NodeKind.ENVIRONMENT: ("{{", "}}"),
    NodeKind.DATASET: ("[(", ")]"),
    NodeKind.RESOURCE: (">", "]"),
}


def _mermaid_text(text: str) -> str:
    # Mermaid has no backslash escapes; entity codes are the documented way inside quoted labels.
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;").replace("\n", " "))


def to_mermaid(graph: Graph, *, direction: str = "LR", show_status: bool = True) -> str:
    """A Mermaid flowchart; arrows read as the links do (``a -->|depends_on| b``) and each node carries
    its state as a class (``:::passed``) coloured by ``classDef``."""
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes())}
    lines = [f"flowchart {direction}"]
    for node in graph.nodes():
        left, right = _MERMAID_SHAPES[node.kind]
        text = node.title + (f" · {node.status.value}" if show_status else "")
        lines.append(f'    {ids[node.id]}{left}"{_mermaid_text(text)}"{right}:::{node.status.value}')
    for link in graph.links():
        lines.append(f"    {ids[link.source]} -->|{link.type.value}| {ids[link.target]}")
    for status, (fill, stroke) in STATE_COLOURS.items():
        lines.append(f"    classDef {status.value} fill:{fill},stroke:{stroke},color:#000")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {
    NodeKind.APP: "box3d", NodeKind.SHARD: "box", NodeKind.TEST: "ellipse", NodeKind.STEP: "box",
    NodeKind.ENVIRONMENT: "hexagon", NodeKind.DATASET: "cylinder", NodeKind.RESOURCE: "component",
}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT; node fill colour is the state, shape is the kind."""
    lines = [f"digraph {_dot_quote(graph.name)} {{", "    rankdir=LR;",
             '    node [style="filled,rounded", fontname="Helvetica"];']
    for node in graph.nodes():
        fill, stroke = STATE_COLOURS[node.status]
        # DOT's own line break is the two characters backslash-n, added after quoting the parts.
        label = _dot_quote(node.title)[:-1] + "\\n" + f"{node.kind.value} · {node.status.value}" + '"'
        lines.append(f"    {_dot_quote(node.id)} [label={label}, "
                     f"shape={_DOT_SHAPES[node.kind]}, fillcolor={_dot_quote(fill)}, color={_dot_quote(stroke)}];")
    for link in graph.links():
        lines.append(f"    {_dot_quote(link.source)} -> {_dot_quote(link.target)} "
                     f"[label={_dot_quote(link.type.value)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _describe(graph: Graph, id: str) -> str:
    node = graph.node(id)
    return f"{id} [{node.kind.value}, {node.status.value}]"


def _meta(link: Link) -> str:
    if not link.metadata:
        return ""
    return "  {" + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in link.metadata.items()) + "}"


def backlinks_text(graph: Graph, id: str) -> str:
    """One node's links in both directions, as text: what it links to, and what links back to it."""
    node = graph.node(id)
    out = [_describe(graph, id) + (f" {node.label}" if node.label else "")]
    outgoing = graph.links_from(id)
    incoming = graph.links_to(id)
    out.append(f"  links ({len(outgoing)}):")
    out.extend(f"    --{link.type.value}--> {_describe(graph, link.target)}{_meta(link)}" for link in outgoing)
    out.append(f"  backlinks ({len(incoming)}):")
    out.extend(f"    <--{link.type.reverse_name}-- {_describe(graph, link.source)}{_meta(link)}"
               for link in incoming)
    chain = graph.dependency_chain(id)
    out.append(f"  execution order: {' -> '.join(chain)}")
    dependents = graph.dependents(id, transitive=True)
    out.append(f"  impact: {len(dependents)} dependent(s)" + (f": {', '.join(dependents)}" if dependents else ""))
    return "\n".join(out) + "\n"
