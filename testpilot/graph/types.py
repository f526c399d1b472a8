"""Graph vocabulary: node kinds and states, typed links, and the graph's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from testpilot.errors import TestpilotError


class NodeKind(StrEnum):
    APP = "app"
    SHARD = "shard"
    TEST = "test"
    STEP = "step"
    ENVIRONMENT = "environment"
    DATASET = "dataset"
    RESOURCE = "resource"


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class LinkType(StrEnum):
    DEPENDS_ON = "depends_on"
    REQUIRES_RESOURCE = "requires_resource"
    USES_DATASET = "uses_dataset"
    RUNS_ON = "runs_on"
    FEEDS = "feeds"

    @property
    def reverse_name(self) -> str:
        """Name of the link read from its target, e.g. ``depends_on`` -> ``dependency_of``."""
        return _REVERSE_NAMES[self]

    @property
    def target_runs_first(self) -> bool:
        """True when the link's target is the prerequisite (every type but ``feeds``)."""
        return self is not LinkType.FEEDS


_REVERSE_NAMES = {
    LinkType.DEPENDS_ON: "dependency_of",
    LinkType.REQUIRES_RESOURCE: "resource_for",
    LinkType.USES_DATASET: "dataset_for",
    LinkType.RUNS_ON: "hosts",
    LinkType.FEEDS: "fed_by",
}


@dataclass(slots=True)
class Node:
    """A vertex: ``id`` is unique in the graph; ``metadata`` must hold JSON values only."""

    id: str
    kind: NodeKind
    label: str = ""
    status: NodeStatus = NodeStatus.PENDING
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.label or self.id


@dataclass(slots=True)
class Link:
    """``source --type--> target``, e.g. ``web_vm depends_on shared_net``; metadata is JSON values only."""

    source: str
    target: str
    type: LinkType
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prerequisite(self) -> str:
        return self.target if self.type.target_runs_first else self.source

    @property
    def dependent(self) -> str:
        return self.source if self.type.target_runs_first else self.target

    def describe(self) -> str:
        return f"{self.source} {self.type.value} {self.target}"


class GraphError(TestpilotError):
    """A graph operation was given something it cannot use."""

    exit_code = 2


class UnknownNodeError(GraphError):
    """A node id that is not in the graph; ``suggestions`` lists close ids."""

    def __init__(self, node: str, suggestions: list[str] | None = None) -> None:
        suggestions = suggestions or []
        hint = f"did you mean {', '.join(suggestions)}?" if suggestions else "list nodes with `testpilot graph`"
        super().__init__(f"unknown node {node!r}", hint=hint, node=node)
        self.node, self.suggestions = node, suggestions


class GraphCycleError(GraphError):
    """Links that would make a dependency cycle. ``cycle`` is the path, first node repeated at the end,
    read as "needs": ``[a, b, a]`` means a needs b and b needs a."""

    def __init__(self, cycle: list[str], links: list[Link]) -> None:
        path = " -> ".join(cycle)
        because = "; ".join(link.describe() + _origin(link) for link in links)
        super().__init__(f"dependency cycle: {path} ({because})",
                         hint="remove or reverse one of these links", cycle=cycle)
        self.cycle, self.links = cycle, links


def _origin(link: Link) -> str:
    origin = link.metadata.get("declared_in")
    return f" [{origin}]" if origin else ""
