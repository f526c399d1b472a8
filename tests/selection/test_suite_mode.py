"""Several apps in one repository: app-relative ids, cross-app propagation, scenarios."""

from __future__ import annotations

from typing import Any

from testpilot.selection import select_tests
from testpilot.suite import Suite, parse_suite

from .helpers import Repo

FILES = {
    "services/catalog/catalog/__init__.py": "", "services/catalog/catalog/items.py": "ITEMS = [1]\n",
    "services/catalog/tests/test_items.py": "from catalog.items import ITEMS\n\ndef test_i():\n    assert ITEMS\n",
    "services/orders/orders/__init__.py": "", "services/orders/orders/place.py": "def place():\n    return 1\n",
    "services/orders/tests/test_place.py": "from orders.place import place\n\ndef test_p():\n    assert place()\n",
    "web/tests/test_ui.py": "def test_ui():\n    pass\n",
    "shared/money.py": "CENTS = 100\n",
    "services/orders/orders/total.py": "from money import CENTS\n",
    "services/orders/tests/test_total.py": "import orders.total\n\ndef test_t():\n    pass\n",
}


def suite(repo: Repo, **extra: Any) -> Suite:
    data = {
        "apps": {
            "catalog": {"path": "services/catalog", "test_command": "pytest {tests}"},
            "orders": {"path": "services/orders", "test_command": "pytest {tests}", "depends_on": ["catalog"]},
            "web": {"path": "web", "test_command": "pytest {tests}", "depends_on": ["orders"]},
        },
        "scenarios": {"buy": {"steps": [{"app": "web", "test": "tests/test_ui.py::test_ui"}]},
                      "stock": {"steps": [{"app": "catalog", "test": "tests/test_items.py::test_i"}]}},
        **extra,
    }
    return parse_suite(data, root=repo.path)


def test_ids_are_relative_to_the_app_and_dependents_are_selected(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"services/catalog/catalog/items.py": "ITEMS = [2]\n"})
    sel = select_tests(repo.path, base, head, suite(repo))
    got = {(t.app, t.test_id): t.reasons[-1] for t in sel.selected}
    texts = {(t.app, t.test_id): {r.text for r in t.reasons} for t in sel.selected}
    assert set(got) == {("catalog", "tests/test_items.py"), ("orders", "tests/test_place.py"),
                        ("orders", "tests/test_total.py"), ("web", "tests/test_ui.py")}
    assert ("services/catalog/tests/test_items.py -> services/catalog/catalog/items.py (changed)"
            in texts[("catalog", "tests/test_items.py")])
    assert got[("web", "tests/test_ui.py")].text == (
        "app web depends on catalog, which changed (services/catalog/catalog/items.py)")
    assert set(sel.affected_scenarios) == {"buy", "stock"}


def test_change_only_in_tests_does_not_propagate(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"services/catalog/tests/test_items.py": "def test_i():\n    pass\n"})
    sel = select_tests(repo.path, base, head, suite(repo))
    assert {(t.app, t.test_id) for t in sel.selected} == {("catalog", "tests/test_items.py")}
    assert set(sel.affected_scenarios) == {"stock"}


def test_dependents_seam_replaces_depends_on(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"services/orders/orders/place.py": "def place():\n    return 2\n"})
    sel = select_tests(repo.path, base, head, suite(repo), dependents=lambda app: ["catalog"] if app == "orders" else [])
    assert {t.app for t in sel.selected} == {"orders", "catalog"}


def test_import_across_apps_through_a_shared_folder(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"shared/money.py": "CENTS = 10\n"})
    sel = select_tests(repo.path, base, head, suite(repo))
    # shared/ is on no app's path (it would be installed or on PYTHONPATH); an import no root
    # resolves is matched against file paths anywhere in the repository.
    assert ("orders", "tests/test_total.py") in {(t.app, t.test_id) for t in sel.selected}


def test_unanalysable_file_outside_every_app_selects_all_apps(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"Dockerfile": "FROM python\n"})
    sel = select_tests(repo.path, base, head, suite(repo))
    assert sel.unanalysable == ["Dockerfile"]
    assert {t.app for t in sel.selected} == {"catalog", "orders", "web"}
