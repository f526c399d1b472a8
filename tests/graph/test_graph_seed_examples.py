"""Seed 000's three README examples, replayed as operations on our graph."""

from __future__ import annotations

import pytest

from testpilot.graph import Graph, GraphCycleError, LinkType, NodeKind, NodeStatus, backlinks_text


def _add_test(g: Graph, id: str, name: str, description: str, dependencies: list[str] = ()) -> None:  # type: ignore[assignment]
    g.add_node(id, NodeKind.TEST, name, description=description)
    for dep in dependencies:
        g.add_link(id, LinkType.DEPENDS_ON, dep)


def test_proxmox_vm_chain_runs_in_dependency_order_and_skips_after_a_failure() -> None:
    g = Graph("Proxmox VM Provisioning")
    _add_test(g, "infra_01", "Verify Proxmox Cluster", "Check cluster health")
    _add_test(g, "infra_02", "Check Storage", "Verify storage pools", ["infra_01"])
    _add_test(g, "template_01", "Download ISO", "Download OS ISO", ["infra_02"])
    _add_test(g, "template_02", "Create VM Template", "Build VM template", ["template_01"])
    _add_test(g, "deploy_01", "Clone VM", "Clone from template", ["template_02"])
    _add_test(g, "deploy_02", "Configure VM", "Configure VM settings", ["deploy_01"])
    _add_test(g, "deploy_03", "Start VM", "Boot the VM", ["deploy_02"])

    chain = g.dependency_chain("deploy_03")
    assert chain == ["infra_01", "infra_02", "template_01", "template_02", "deploy_01", "deploy_02", "deploy_03"]
    assert g.layers() == [[n] for n in chain]
    assert g.dependents("infra_02") == ["template_01"]
    assert g.impact("template_01") == ["template_01", "template_02", "deploy_01", "deploy_02", "deploy_03"]

    # Running the chain: template_02 fails, so everything after it is skipped (skip_on_dependency_failure).
    for id in chain:
        g.set_status(id, NodeStatus.FAILED if id == "template_02" else NodeStatus.PASSED)
        if id == "template_02":
            for dependent in g.dependents(id, transitive=True):
                g.set_status(dependent, NodeStatus.SKIPPED, reason=f"dependency {id} failed")
            break
    stats = g.stats()
    assert stats["by_status"] == {"passed": 3, "failed": 1, "skipped": 3}
    assert stats["depth"] == 7 and stats["roots"] == 1 and stats["leaves"] == 1
    assert g.node("deploy_03").metadata["reason"] == "dependency template_02 failed"

    # The chain cannot be closed into a loop.
    with pytest.raises(GraphCycleError) as err:
        g.add_link("infra_01", LinkType.DEPENDS_ON, "deploy_03")
    assert err.value.cycle[0] == err.value.cycle[-1] == "infra_01"
    assert len(err.value.cycle) == 8


def test_custom_links_carry_metadata_both_ways() -> None:
    g = Graph("Resource Tracking")
    g.add_node("network_setup", NodeKind.RESOURCE, "Setup Network", description="Configure vmbr0")
    g.add_node("vm_deploy", NodeKind.TEST, "Deploy VM", description="Deploy test VM")
    link = g.add_link("vm_deploy", "requires_resource", "network_setup",
                      resource_type="network_bridge", resource_name="vmbr0", criticality="high")

    assert g.links_from("vm_deploy", LinkType.REQUIRES_RESOURCE) == [link]
    assert g.links_from("vm_deploy", LinkType.DEPENDS_ON) == []
    back = g.links_to("network_setup")
    assert back == [link] and back[0] is link  # one object, reachable from both ends
    assert back[0].metadata == {"resource_type": "network_bridge", "resource_name": "vmbr0", "criticality": "high"}
    assert link.type.reverse_name == "resource_for"
    assert g.dependency_chain("vm_deploy") == ["network_setup", "vm_deploy"]
    assert g.impact("network_setup") == ["network_setup", "vm_deploy"]
    text = backlinks_text(g, "network_setup")
    assert "<--resource_for-- vm_deploy [test, pending]" in text
    assert '"vmbr0"' in text and '"high"' in text


def test_multi_vm_shared_resources() -> None:
    g = Graph("Multi-VM Setup")
    _add_test(g, "shared_net", "Setup Network", "Configure shared network")
    _add_test(g, "shared_storage", "Setup Storage", "Configure shared storage")
    _add_test(g, "web_vm", "Deploy Web Server", "Deploy web VM", ["shared_net", "shared_storage"])
    _add_test(g, "db_vm", "Deploy Database", "Deploy DB VM", ["shared_net", "shared_storage"])
    _add_test(g, "app_vm", "Deploy App Server", "Deploy app VM", ["shared_net", "shared_storage", "web_vm", "db_vm"])

    assert g.dependents("shared_net") == ["web_vm", "db_vm", "app_vm"]
    assert g.dependents("web_vm") == ["app_vm"]
    assert g.layers() == [["shared_net", "shared_storage"], ["web_vm", "db_vm"], ["app_vm"]]
    assert g.impact("shared_storage") == ["shared_storage", "web_vm", "db_vm", "app_vm"]
    assert g.impact("db_vm") == ["db_vm", "app_vm"]
    assert g.dependencies("app_vm") == ["shared_net", "shared_storage", "web_vm", "db_vm"]
    assert [link.source for link in g.links_to("shared_net", "depends_on")] == ["web_vm", "db_vm", "app_vm"]
    assert g.stats()["by_link_type"] == {"depends_on": 8}
