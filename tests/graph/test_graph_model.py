"""Graph queries, cycle rejection and exports."""

from __future__ import annotations

import json

import pytest

from testpilot.errors import TestpilotError
from testpilot.graph import (
    Graph,
    GraphCycleError,
    GraphError,
    Link,
    LinkType,
    Node,
    NodeKind,
    NodeStatus,
    UnknownNodeError,
    backlinks_text,
    from_json,
    to_dot,
    to_json,
    to_mermaid,
)


@pytest.fixture
def g() -> Graph:
    """template -> env -> app(api) -> shards; dataset -> app; scenario steps fed by each other."""
    g = Graph("shop")
    g.add_node("template:debian", NodeKind.ENVIRONMENT, "debian-12")
    g.add_node("env:staging", NodeKind.ENVIRONMENT)
    g.add_node("data:users", NodeKind.DATASET, "users", version="1")
    g.add_node("app:api", NodeKind.APP, "api")
    g.add_node("app:web", NodeKind.APP, "web")
    g.add_node("app:api#0", NodeKind.SHARD)
    g.add_node("app:web#0", NodeKind.SHARD)
    g.add_node("step:pay/login", NodeKind.STEP)
    g.add_node("step:pay/charge", NodeKind.STEP)
    g.add_node("resource:db", NodeKind.RESOURCE)
    g.add_link("env:staging", "depends_on", "template:debian")
    g.add_link("app:api", "runs_on", "env:staging")
    g.add_link("app:web", "runs_on", "env:staging")
    g.add_link("app:api", "uses_dataset", "data:users")
    g.add_link("app:api", "requires_resource", "resource:db", criticality="high")
    g.add_link("app:web", "depends_on", "app:api")
    g.add_link("app:api#0", "depends_on", "app:api")
    g.add_link("app:web#0", "depends_on", "app:web")
    g.add_link("step:pay/login", "depends_on", "app:web")
    g.add_link("step:pay/charge", "depends_on", "app:api")
    g.add_link("step:pay/login", "feeds", "step:pay/charge", fields=[{"from": "token", "to": "token"}])
    return g


def test_links_are_stored_with_their_reverse_and_filter_by_type(g: Graph) -> None:
    assert [(x.type, x.target) for x in g.links_from("app:api")] == [
        (LinkType.RUNS_ON, "env:staging"), (LinkType.USES_DATASET, "data:users"),
        (LinkType.REQUIRES_RESOURCE, "resource:db")]
    assert [x.source for x in g.links_to("app:api")] == ["app:web", "app:api#0", "step:pay/charge"]
    assert [x.source for x in g.links_to("app:api", LinkType.DEPENDS_ON)] == ["app:web", "app:api#0",
                                                                            "step:pay/charge"]
    assert g.links_to("app:api", "feeds") == []
    assert [x.describe() for x in g.links_of("app:api", "depends_on")] == [
        "app:web depends_on app:api", "app:api#0 depends_on app:api", "step:pay/charge depends_on app:api"]
    assert len(g.links_of("app:api")) == 6
    feed = g.links_from("step:pay/login", LinkType.FEEDS)[0]
    assert feed is g.links_to("step:pay/charge", LinkType.FEEDS)[0]
    assert (feed.prerequisite, feed.dependent) == ("step:pay/login", "step:pay/charge")
    assert [t.reverse_name for t in LinkType] == ["dependency_of", "resource_for", "dataset_for", "hosts", "fed_by"]


def test_dependencies_dependents_and_chain(g: Graph) -> None:
    assert g.dependencies("step:pay/charge") == ["app:api", "step:pay/login"]
    assert g.dependency_chain("step:pay/charge") == [
        "template:debian", "data:users", "resource:db", "env:staging", "app:api", "app:web", "step:pay/login",
        "step:pay/charge"]
    assert g.dependents("app:web") == ["app:web#0", "step:pay/login"]
    assert g.dependents("app:web", transitive=True) == ["app:web#0", "step:pay/login", "step:pay/charge"]
    assert g.dependents("step:pay/charge", transitive=True) == []


def test_impact_of_template_and_dataset_and_filtered_by_kind(g: Graph) -> None:
    everything_on_it = g.impact("template:debian")
    assert everything_on_it[0] == "template:debian"
    assert set(everything_on_it) == {n.id for n in g.nodes()} - {"data:users", "resource:db"}
    assert g.impact("data:users", kinds=[NodeKind.SHARD, NodeKind.STEP]) == [
        "app:api#0", "app:web#0", "step:pay/login", "step:pay/charge"]
    assert g.impact("step:pay/login") == ["step:pay/login", "step:pay/charge"]


def test_layers_allow_parallel_runs_and_respect_every_link(g: Graph) -> None:
    layers = g.layers()
    assert layers[0] == ["template:debian", "data:users", "resource:db"]
    where = {n: i for i, layer in enumerate(layers) for n in layer}
    for link in g.links():
        assert where[link.prerequisite] < where[link.dependent], link
    assert g.topological_order() == [n for layer in layers for n in layer]


def test_stats(g: Graph) -> None:
    g.set_status("app:api#0", NodeStatus.FAILED)
    stats = g.stats()
    assert stats["nodes"] == 10 and stats["links"] == 11
    assert stats["by_kind"]["shard"] == 2 and stats["by_kind"]["environment"] == 2
    assert stats["by_status"] == {"pending": 9, "failed": 1}
    assert stats["by_link_type"] == {"depends_on": 6, "runs_on": 2, "uses_dataset": 1, "requires_resource": 1,
                                     "feeds": 1}
    assert stats["roots"] == 3 and stats["leaves"] == 3 and stats["depth"] == 6


def test_cycle_is_rejected_with_its_path_and_graph_is_unchanged(g: Graph) -> None:
    before = to_json(g)
    with pytest.raises(GraphCycleError) as err:
        g.add_link("template:debian", "depends_on", "step:pay/charge")
    e = err.value
    assert isinstance(e, TestpilotError) and isinstance(e, GraphError)
    assert e.cycle[0] == e.cycle[-1] == "template:debian"
    for needer, needed in zip(e.cycle, e.cycle[1:], strict=False):  # each hop is a real "needs"
        assert needed in g.dependencies(needer) or (needer, needed) == ("template:debian", "step:pay/charge")
    assert str(e).startswith("dependency cycle: template:debian -> step:pay/charge -> ")
    assert "template:debian depends_on step:pay/charge" in str(e)
    assert to_json(g) == before
    with pytest.raises(GraphCycleError, match=r"a -> a"):
        g.add_node("a", NodeKind.TEST)
        g.add_link("a", "depends_on", "a")
    # feeds runs the other way: a consumer cannot also be a prerequisite of its producer.
    with pytest.raises(GraphCycleError, match="step:pay/login -> step:pay/charge -> step:pay/login "
                       r"\(step:pay/login depends_on step:pay/charge; step:pay/login feeds step:pay/charge\)"):
        g.add_link("step:pay/login", "depends_on", "step:pay/charge")


def test_bulk_add_rolls_back_on_a_cycle() -> None:
    g = Graph()
    g.add_nodes(Node(x, NodeKind.TEST) for x in "abcd")
    g.add_links([Link("b", "a", LinkType.DEPENDS_ON)])
    with pytest.raises(GraphCycleError) as err:
        g.add_links([Link("c", "b", LinkType.DEPENDS_ON), Link("d", "c", LinkType.DEPENDS_ON),
                     Link("b", "d", LinkType.DEPENDS_ON)])
    assert set(err.value.cycle) == {"b", "c", "d"} and err.value.cycle[0] == err.value.cycle[-1]
    assert len(err.value.cycle) == 4
    assert [x.describe() for x in g.links()] == ["b depends_on a"]
    with pytest.raises(UnknownNodeError):
        g.add_links([Link("c", "b", LinkType.DEPENDS_ON), Link("c", "zz", LinkType.DEPENDS_ON)])
    assert [x.describe() for x in g.links()] == ["b depends_on a"]
    assert g.layers() == [["a", "c", "d"], ["b"]]


def test_unknown_node_suggests_close_ids(g: Graph) -> None:
    with pytest.raises(UnknownNodeError) as err:
        g.dependents("app:apj")
    assert "app:api" in err.value.suggestions and "did you mean" in str(err.value)


def test_add_node_again_updates_without_resetting_state(g: Graph) -> None:
    g.set_status("app:api", NodeStatus.PASSED)
    g.add_node("app:api", NodeKind.APP, owner="team-pay")
    node = g.node("app:api")
    assert (node.status, node.label, node.metadata) == (NodeStatus.PASSED, "api", {"owner": "team-pay"})
    g.add_node("app:api", NodeKind.APP, "API", status="failed")
    assert (node.status, node.label) == (NodeStatus.FAILED, "API")
    assert len(g) == 10 and "app:api" in g and [n.id for n in g.nodes("dataset")] == ["data:users"]


def test_same_type_link_replaces_and_remove_link(g: Graph) -> None:
    g.add_link("app:api", "requires_resource", "resource:db", criticality="low")
    assert [x.metadata for x in g.links_from("app:api", "requires_resource")] == [{"criticality": "low"}]
    g.remove_link("app:web", "depends_on", "app:api")
    assert "app:web" not in g.dependents("app:api")
    with pytest.raises(GraphError, match="no link"):
        g.remove_link("app:web", "depends_on", "app:api")


def test_json_round_trip_is_exact(g: Graph) -> None:
    g.set_status("step:pay/login", NodeStatus.PASSED, duration=1.5)
    text = to_json(g)
    copy = from_json(text)
    assert copy == g
    assert to_json(copy) == text
    assert copy.links_from("app:api", "requires_resource")[0].metadata == {"criticality": "high"}
    data = json.loads(text)
    assert data["version"] == 1 and len(data["nodes"]) == 10 and len(data["links"]) == 11
    copy.set_status("app:api", NodeStatus.FAILED)
    assert copy != g
    with pytest.raises(GraphError, match="unsupported graph format"):
        from_json(json.dumps({**data, "version": 99}))


def test_mermaid_marks_states_as_classes(g: Graph) -> None:
    g.set_status("app:api#0", NodeStatus.FAILED)
    g.set_status("step:pay/login", NodeStatus.PASSED)
    g.add_node("odd", NodeKind.TEST, 'say "hi" <b>')
    text = to_mermaid(g)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    ids = {n.id: f"n{i}" for i, n in enumerate(g.nodes())}
    assert f'    {ids["app:api#0"]}["app:api#0 · failed"]:::failed' in lines
    assert f'    {ids["step:pay/login"]}(["step:pay/login · passed"]):::passed' in lines
    assert f'    {ids["odd"]}("say #quot;hi#quot; #lt;b#gt; · pending"):::pending' in lines
    assert f'    {ids["step:pay/login"]} -->|feeds| {ids["step:pay/charge"]}' in lines
    assert "    classDef failed fill:#f8d0d0,stroke:#dc3545,color:#000" in lines
    assert sum(1 for x in lines if "-->|" in x) == 11


def test_dot_export(g: Graph) -> None:
    g.add_node('q"uote', NodeKind.TEST)
    g.set_status("app:web", NodeStatus.SKIPPED)
    text = to_dot(g)
    assert text.startswith('digraph "shop" {')
    assert '"app:web" -> "app:api" [label="depends_on"];' in text
    assert '"app:web" [label="web\\napp · skipped", shape=box3d, fillcolor="#fff3c4"' in text
    assert '"q\\"uote" [label=' in text
    assert text.rstrip().endswith("}")


def test_backlinks_text(g: Graph) -> None:
    text = backlinks_text(g, "app:api")
    assert text.splitlines()[0] == "app:api [app, pending] api"
    assert "  links (3):" in text and "  backlinks (3):" in text
    assert "    --requires_resource--> resource:db [resource, pending]  {criticality: \"high\"}" in text
    assert "    <--dependency_of-- app:web [app, pending]" in text
    assert "execution order: template:debian -> data:users -> resource:db -> env:staging -> app:api\n" in text
    assert "impact: 5 dependent(s)" in text


def test_subgraph_keeps_only_inner_links(g: Graph) -> None:
    sub = g.subgraph(g.impact("app:web"))
    assert [n.id for n in sub.nodes()] == ["app:web", "app:web#0", "step:pay/login", "step:pay/charge"]
    assert sorted(x.describe() for x in sub.links()) == [
        "app:web#0 depends_on app:web", "step:pay/login depends_on app:web", "step:pay/login feeds step:pay/charge"]
