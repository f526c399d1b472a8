"""The backlink graph: typed nodes and two-way links, order, impact, cycles, exports, suite builder."""

from testpilot.graph.build import (
    EXECUTABLE_KINDS,
    app_id,
    apply_states,
    build_graph,
    case_id,
    dataset_id,
    env_id,
    executable_dependencies,
    shard_id,
    skip_reason,
    step_id,
)
from testpilot.graph.export import (
    backlinks_text,
    from_dict,
    from_json,
    to_dict,
    to_dot,
    to_json,
    to_mermaid,
)
from testpilot.graph.markers import scan_markers, scan_source
from testpilot.graph.model import (
    Graph,
    GraphCycleError,
    GraphError,
    Link,
    LinkType,
    Node,
    NodeKind,
    NodeStatus,
    UnknownNodeError,
)
from testpilot.graph.render import FORMATS, render_graph, resolve_node

__all__ = [
    "EXECUTABLE_KINDS", "FORMATS", "Graph", "GraphCycleError", "GraphError", "Link", "LinkType", "Node",
    "NodeKind", "NodeStatus", "UnknownNodeError", "app_id", "apply_states", "backlinks_text", "build_graph", "dataset_id",
    "env_id", "executable_dependencies", "from_dict", "from_json", "render_graph", "resolve_node",
    "scan_markers", "scan_source", "shard_id", "skip_reason", "step_id", "case_id", "to_dict", "to_dot",
    "to_json", "to_mermaid",
]
