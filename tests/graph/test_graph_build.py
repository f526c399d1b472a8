"""build_graph from a suite, marker scanning, executable dependencies, skip reasons, render_graph."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from testpilot.errors import ConfigError
from testpilot.graph import (
    GraphCycleError,
    GraphError,
    LinkType,
    NodeKind,
    NodeStatus,
    UnknownNodeError,
    apply_states,
    build_graph,
    executable_dependencies,
    from_json,
    render_graph,
    scan_markers,
    scan_source,
    skip_reason,
    to_mermaid,
)
from testpilot.suite import Suite, parse_suite

SETUP_TESTS = '''
import pytest

def test_cluster():
    pass

@pytest.mark.depends_on("tests/test_setup.py::test_cluster")
def test_storage():
    pass
'''

VM_TESTS = '''
import pytest
from pytest import mark

pytestmark = pytest.mark.depends_on("tests/test_setup.py::test_storage")

def test_clone():
    pass

@mark.depends_on("test_clone", "::TestBoot::test_power")
def test_configure():
    pass

@pytest.mark.depends_on(["tests/test_setup.py::test_cluster"])
class TestBoot:
    def test_power(self):
        pass

    @pytest.mark.depends_on("user:tests/test_users.py::test_login")
    def test_console(self):
        pass

    def helper(self):
        pass

@pytest.mark.skip
def test_unrelated():
    pass
'''


def _suite(tmp_path: Path, **extra: Any) -> Suite:
    for app in ("user", "payment", "infra"):
        (tmp_path / app / "tests").mkdir(parents=True)
    (tmp_path / "infra" / "tests" / "test_setup.py").write_text(SETUP_TESTS)
    (tmp_path / "infra" / "tests" / "test_vm.py").write_text(VM_TESTS)
    (tmp_path / "infra" / "tests" / "test_broken.py").write_text("def test_x(:\n")
    data: dict[str, Any] = {
        "name": "shop",
        "environments": {
            "local": {"services": {"db": {"type": "sqlite"}}},
            "vms": {"provider": "proxmox", "settings": {"template": "debian-12"}},
        },
        "apps": {
            "user": {"path": "user", "test_command": "pytest {tests}"},
            "payment": {"path": "payment", "test_command": "pytest {tests}", "depends_on": ["user"], "shards": 2,
                        "test_dependencies": {"tests/test_pay.py::test_refund": ["tests/test_pay.py::test_charge"]}},
            "infra": {"path": "infra", "test_command": "pytest {tests}", "environment": "vms"},
        },
        "data": {
            "accounts": {"schema": {"id": "uuid"}, "targets": ["payment.db"]},
            "everyone": {"schema": {"id": "uuid"}},
        },
        "scenarios": {
            "checkout": {
                "steps": [
                    {"app": "user", "test": "tests/test_flow.py::test_login", "outputs": {"token": "str"}},
                    {"app": "payment", "test": "tests/test_flow.py::test_create_payment",
                     "outputs": {"payment_id": "int"}},
                    {"app": "payment", "command": "confirm --now", "name": "confirm"},
                    {"app": "user", "test": "tests/test_flow.py::test_profile", "after": []},
                ],
                "data_flow": {
                    "token": {"from": "user.test_login.token", "to": "payment.test_create_payment.token"},
                    "payment": {"from": "payment.test_create_payment.payment_id", "to": "payment.confirm.id",
                                "type": "int"},
                    "token2": {"from": "user.test_login.token", "to": "payment.confirm.token"},
                },
            },
        },
    }
    data.update(extra)
    return parse_suite(data, source="testpilot.yaml", root=tmp_path)


def test_scan_source_reads_function_class_and_module_markers() -> None:
    found = scan_source(textwrap.dedent(VM_TESTS), "tests/test_vm.py")
    assert found == {
        "tests/test_vm.py::test_clone": ["tests/test_setup.py::test_storage"],
        "tests/test_vm.py::test_configure": ["tests/test_setup.py::test_storage", "tests/test_vm.py::test_clone",
                                             "tests/test_vm.py::TestBoot::test_power"],
        "tests/test_vm.py::TestBoot::test_power": ["tests/test_setup.py::test_storage",
                                                   "tests/test_setup.py::test_cluster"],
        "tests/test_vm.py::TestBoot::test_console": ["tests/test_setup.py::test_storage",
                                                     "tests/test_setup.py::test_cluster",
                                                     "user:tests/test_users.py::test_login"],
        "tests/test_vm.py::test_unrelated": ["tests/test_setup.py::test_storage"],
    }


def test_scan_markers_walks_test_files_and_skips_unparsable_ones(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    found = scan_markers(suite.app_dir("infra"), ["tests/"])
    assert found["tests/test_setup.py::test_storage"] == ["tests/test_setup.py::test_cluster"]
    assert "tests/test_setup.py::test_cluster" not in found
    assert not any(k.startswith("tests/test_broken.py") for k in found)
    assert len(found) == 6


def test_build_graph_nodes_and_links(tmp_path: Path) -> None:
    g = build_graph(_suite(tmp_path))
    kinds = g.stats()["by_kind"]
    assert kinds["app"] == 3 and kinds["shard"] == 4 and kinds["step"] == 4 and kinds["dataset"] == 2
    assert kinds["environment"] == 3 and kinds["resource"] == 1  # two pools + the debian-12 template
    assert [x.target for x in g.links_from("app:payment")] == [
        "env:local", "resource:local.db", "data:accounts", "data:everyone", "app:user"]
    assert [x.target for x in g.links_from("app:infra", LinkType.RUNS_ON)] == ["env:vms"]
    assert [x.source for x in g.links_to("data:everyone", LinkType.USES_DATASET)] == [
        "app:user", "app:payment", "app:infra"]
    assert g.links_from("env:vms")[0].target == "template:debian-12"
    # app depends_on becomes shard-to-shard execution links
    assert sorted(x.target for x in g.links_from("app:payment#1")) == ["app:payment", "app:user#0"]
    # scenario: ordered steps, after: [], data flow as feeds with the fields
    feeds = g.links_from("step:checkout/test_login", LinkType.FEEDS)
    assert [x.target for x in feeds] == ["step:checkout/test_create_payment", "step:checkout/confirm"]
    assert feeds[1].metadata["fields"] == [{"flow": "token2", "from": "token", "to": "token", "type": "str"}]
    assert g.dependencies("step:checkout/test_profile") == ["app:user"]
    assert g.dependencies("step:checkout/confirm") == ["app:payment", "step:checkout/test_login",
                                                      "step:checkout/test_create_payment"]
    # test-level: suite file and markers, including a cross-app marker
    assert g.dependencies("test:payment:tests/test_pay.py::test_refund") == [
        "app:payment", "test:payment:tests/test_pay.py::test_charge"]
    assert g.dependency_chain("test:infra:tests/test_vm.py::test_configure")[-4:] == [
        "test:infra:tests/test_setup.py::test_storage", "test:infra:tests/test_vm.py::test_clone",
        "test:infra:tests/test_vm.py::TestBoot::test_power", "test:infra:tests/test_vm.py::test_configure"]
    assert "test:user:tests/test_users.py::test_login" in g.dependencies(
        "test:infra:tests/test_vm.py::TestBoot::test_console")
    assert "app:user#0" in g.dependencies("app:infra#0")  # cross-app test dependency orders the shards
    link = g.links_from("test:infra:tests/test_vm.py::test_clone")[1]
    assert link.metadata["declared_in"] == "marker in tests/test_vm.py"


def test_impact_of_template_and_dataset(tmp_path: Path) -> None:
    g = build_graph(_suite(tmp_path))
    runnable = [NodeKind.SHARD, NodeKind.STEP]
    assert g.impact("template:debian-12", kinds=runnable) == ["app:infra#0"]
    assert g.impact("data:accounts", kinds=runnable) == [
        "app:payment#0", "app:payment#1", "step:checkout/test_create_payment", "step:checkout/confirm"]
    assert set(g.impact("app:user", kinds=runnable)) == {
        "app:user#0", "app:payment#0", "app:payment#1", "app:infra#0", *(f"step:checkout/{s}" for s in (
            "test_login", "test_create_payment", "confirm", "test_profile"))}


def test_executable_dependencies_are_exactly_the_wait_for_lists(tmp_path: Path) -> None:
    deps = executable_dependencies(build_graph(_suite(tmp_path)))
    assert dict(sorted(deps.items())) == dict(sorted({
        "app:user#0": [],
        "step:checkout/test_login": [],
        "step:checkout/test_profile": [],
        "app:payment#0": ["app:user#0"],
        "app:payment#1": ["app:user#0"],
        "app:infra#0": ["app:user#0"],
        "step:checkout/test_create_payment": ["step:checkout/test_login"],
        "step:checkout/confirm": ["step:checkout/test_login", "step:checkout/test_create_payment"],
    }.items()))
    order = list(deps)
    for node, waits in deps.items():
        assert all(order.index(w) < order.index(node) for w in waits)


def test_skip_reason_names_the_failed_dependency() -> None:
    assert skip_reason(["a", "b"], {"a": "Completed", "b": "Failed"}) == "dependency b failed"
    assert skip_reason(["a", "b"], {"a": "Skipped", "b": "Crashed"}) == "dependency b failed"
    assert skip_reason(["a"], {"a": "Skipped"}) == "dependency a skipped"
    assert skip_reason(["a"], {"a": "COMPLETED"}) is None
    assert skip_reason([], {}) is None
    # down a chain a -> b -> c, c names the root failure, not just its skipped neighbour
    reasons = {"b": skip_reason(["a"], {"a": "Failed"}) or ""}
    assert skip_reason(["b"], {"a": "Failed", "b": "Skipped"}, reasons) == "dependency a failed"


def test_suite_cycle_names_the_declaring_fields(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    suite = parse_suite({"apps": {
        "a": {"path": "a", "test_command": "pytest", "depends_on": ["b"]},
        "b": {"path": "b", "test_command": "pytest", "depends_on": ["a"]}}}, root=tmp_path)
    with pytest.raises(GraphCycleError) as err:
        build_graph(suite)
    assert err.value.cycle == ["app:b", "app:a", "app:b"]
    assert "[apps.b.depends_on]" in str(err.value) and "[apps.a.depends_on]" in str(err.value)


def test_scenario_config_errors_surface_as_config_errors(tmp_path: Path) -> None:
    bad = {"checkout": {"steps": [{"app": "user", "test": "t.py::a", "after": ["nope"]}]}}
    with pytest.raises(ConfigError) as err:
        build_graph(_suite(tmp_path, scenarios=bad))
    assert err.value.field == "scenarios.checkout.steps.0.after"


def test_render_graph_formats_and_impact(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    text = render_graph(suite)
    assert text.startswith("shop: ") and "layer 0:" in text and "  app:payment [app]  (runs_on env:local" in text
    assert json.loads(render_graph(suite, fmt="json"))["name"] == "shop"
    assert from_json(render_graph(suite, fmt="json")) == build_graph(suite)
    assert render_graph(suite, fmt="mermaid").startswith("flowchart LR\n")
    assert render_graph(suite, fmt="dot").startswith('digraph "shop" {')

    impact = render_graph(suite, impact="accounts")
    assert impact.startswith("changing data:accounts affects 7 node(s); 4 must re-run:\n  app:payment#0 [shard]")
    assert "data:accounts [dataset, pending]" in impact
    sub = from_json(render_graph(suite, impact="data:accounts", fmt="json"))
    assert {n.id for n in sub.nodes()} == {
        "data:accounts", "app:payment", "app:payment#0", "app:payment#1", "step:checkout/test_create_payment",
        "step:checkout/confirm", "test:payment:tests/test_pay.py::test_charge",
        "test:payment:tests/test_pay.py::test_refund"}
    assert "step:checkout/test_login" not in render_graph(suite, impact="accounts", fmt="mermaid")
    with pytest.raises(UnknownNodeError, match="did you mean app:payment"):
        render_graph(suite, impact="paymnt")
    with pytest.raises(GraphError, match="unknown format"):
        render_graph(suite, fmt="svg")


def test_apply_states_colours_the_run_summary(tmp_path: Path) -> None:
    g = build_graph(_suite(tmp_path))
    apply_states(g, {"app:user#0": "Failed", "app:payment#0": "Skipped", "step:checkout/test_login": "Completed",
                     "app:infra#0": "Cancelled", "nope": "Failed"},
                 reasons={"app:payment#0": "dependency app:user#0 failed"})
    assert g.node("app:user#0").status is NodeStatus.FAILED
    assert g.node("app:payment#0").metadata["reason"] == "dependency app:user#0 failed"
    assert g.node("app:payment#1").status is NodeStatus.PENDING
    mermaid = to_mermaid(g)
    assert '["user shard 1/1 · failed"]:::failed' in mermaid
    assert '(["checkout: test_login · passed"]):::passed' in mermaid
    assert '["infra shard 1/1 · cancelled"]:::cancelled' in mermaid
