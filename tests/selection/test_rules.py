"""Mapping rules, always_run / never_run and unanalysable files, in suite mode."""

from __future__ import annotations

from typing import Any

from testpilot.results import Selection
from testpilot.selection import select_tests
from testpilot.suite import parse_suite

from .helpers import SHOP, Repo


def shop_suite(repo: Repo, selection: dict[str, Any] | None = None) -> Any:
    data = {"apps": {"shop": {"path": ".", "test_command": "pytest {tests}"}},
            "selection": {"shop": selection or {}}}
    return parse_suite(data, root=repo.path)


def run(repo: Repo, after: dict[str, str], selection: dict[str, Any] | None = None,
        before: dict[str, str] | None = None) -> Selection:
    base = repo.commit(before or {**SHOP, "config/settings.yaml": "a: 1\n", "docs/x.md": "x\n"})
    head = repo.commit(after)
    return select_tests(repo.path, base, head, shop_suite(repo, selection))


def by_id(sel: Selection) -> dict[str, list[str]]:
    return {t.test_id: [r.text for r in t.reasons] for t in sel.selected}


def test_mapping_rule_capture_groups_name_the_tests(repo: Repo) -> None:
    rules = {"mapping_rules": [{"id": "templates", "source_pattern": r"^shop/templates/(\w+)\.html$",
                                "test_pattern": "tests/test_{1}.py"}]}
    sel = run(repo, {"shop/templates/cart.html": "<b>new</b>"}, rules)
    assert by_id(sel) == {"tests/test_cart.py": ["rule templates: shop/templates/cart.html changed"]}
    assert sel.unanalysable == []


def test_mapping_rule_adds_evidence_for_python_files_too(repo: Repo) -> None:
    rules = {"mapping_rules": [{"source_pattern": r"shop/(util)\.py", "test_pattern": ["tests/test_other.py"]}]}
    sel = run(repo, {"shop/util.py": "def noop():\n    return 5\n"}, rules)
    assert set(by_id(sel)) == {"tests/test_util.py", "tests/test_other.py"}
    assert by_id(sel)["tests/test_other.py"] == ["rule mapping_rules[0]: shop/util.py changed"]


def test_unanalysable_file_without_rule_selects_whole_app_suite(repo: Repo) -> None:
    sel = run(repo, {"config/settings.yaml": "a: 2\n"})
    assert sel.unanalysable == ["config/settings.yaml"]
    assert len(sel.selected) == 4
    assert all(r == ["unanalysable change: config/settings.yaml"] for r in by_id(sel).values())


def test_dependency_file_is_unanalysable(repo: Repo) -> None:
    sel = run(repo, {"requirements.txt": "requests==2\n"})
    assert sel.unanalysable == ["requirements.txt"]
    assert len(sel.selected) == 4


def test_unanalysable_rule_narrows_or_empties_the_selection(repo: Repo) -> None:
    rules = {"unanalysable": [{"pattern": "docs/**", "selects": []},
                              {"pattern": "config/*.yaml", "selects": ["tests/test_cart.py"]}]}
    sel = run(repo, {"docs/x.md": "y\n", "config/settings.yaml": "a: 3\n"}, rules)
    assert by_id(sel) == {"tests/test_cart.py": ["unanalysable change: config/settings.yaml (rule unanalysable[1])"]}


def test_always_run_and_never_run(repo: Repo) -> None:
    rules = {"always_run": ["tests/test_other.py"], "never_run": ["tests/test_cart.py"]}
    sel = run(repo, {"shop/pricing.py": "RATE = 9\n\ndef price(x):\n    return x * RATE\n"}, rules)
    assert set(by_id(sel)) == {"tests/test_checkout.py", "tests/test_other.py"}
    assert by_id(sel)["tests/test_other.py"] == ["always_run: tests/test_other.py"]
    never = [t for t in sel.skipped if t.test_id == "tests/test_cart.py"][0]
    assert never.reasons[0].text == "never_run: tests/test_cart.py"
    assert never.reasons[1].strategy == "import_graph"  # the evidence it had is kept for explain


def test_strategy_all_runs_the_whole_suite(repo: Repo) -> None:
    sel = run(repo, {"shop/util.py": "def noop():\n    return 5\n"}, {"strategy": "all"})
    assert len(sel.selected) == 4
    assert "selection.shop.strategy is 'all'" in by_id(sel)["tests/test_other.py"]


def test_invalid_mapping_regex_is_a_config_error_naming_the_field(repo: Repo) -> None:
    import pytest

    from testpilot.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run(repo, {"shop/util.py": "X = 1\n"}, {"mapping_rules": [{"source_pattern": "(", "test_pattern": "t"}]})
    assert err.value.field == "selection.shop.mapping_rules[0].source_pattern"


def test_unanalysable_rule_narrows_a_module_no_test_imports(repo: Repo) -> None:
    rules = {"unanalysable": [{"pattern": "scripts/", "selects": []}]}
    before = {**SHOP, "scripts/tool.py": "X = 1\n"}
    sel = run(repo, {"scripts/tool.py": "X = 2\n"}, rules, before=before)
    assert sel.selected == []
    assert sel.unanalysable == ["scripts/tool.py"]


def test_unanalysable_rule_selects_whole_suite_by_default(repo: Repo) -> None:
    rules = {"unanalysable": [{"pattern": "config/*.yaml"}]}
    sel = run(repo, {"config/settings.yaml": "a: 4\n"}, rules)
    assert len(sel.selected) == 4
    assert by_id(sel)["tests/test_cart.py"] == ["unanalysable change: config/settings.yaml (rule unanalysable[0])"]
