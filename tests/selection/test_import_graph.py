"""The import-graph strategy on small real repositories."""

from __future__ import annotations

from testpilot.results import Selection
from testpilot.selection import select_tests

from .helpers import SHOP, Repo


def ids(sel: Selection) -> set[str]:
    return {t.test_id for t in sel.selected}


def reasons(sel: Selection, test: str) -> list[str]:
    return [r.text for t in sel.selected if t.test_id == test for r in t.reasons]


def change(repo: Repo, before: dict[str, str], after: dict[str, str]) -> Selection:
    base = repo.commit(before)
    head = repo.commit(after)
    return select_tests(repo.path, base, head)


def test_transitive_import_chain_is_the_evidence(repo: Repo) -> None:
    sel = change(repo, SHOP, {"shop/pricing.py": "RATE = 3\n\ndef price(x):\n    return x * RATE\n"})
    assert ids(sel) == {"tests/test_cart.py", "tests/test_checkout.py"}
    assert reasons(sel, "tests/test_checkout.py") == [
        "tests/test_checkout.py -> shop/checkout.py -> shop/cart.py -> shop/pricing.py (changed)"]
    assert {t.test_id for t in sel.skipped} == {"tests/test_util.py", "tests/test_other.py"}


def test_from_package_import_module_links_the_module_not_its_siblings(repo: Repo) -> None:
    sel = change(repo, SHOP, {"shop/util.py": "def noop():\n    return 1\n"})
    assert ids(sel) == {"tests/test_util.py"}


def test_from_module_import_name_links_the_module(repo: Repo) -> None:
    files = {**SHOP, "tests/test_price.py": "from shop.pricing import RATE\n\ndef test_rate():\n    assert RATE\n"}
    sel = change(repo, files, {"shop/pricing.py": "RATE = 0\n"})
    assert "tests/test_price.py" in ids(sel)


def test_package_init_change_selects_everything_importing_the_package(repo: Repo) -> None:
    sel = change(repo, SHOP, {"shop/__init__.py": "VERSION = 2\n"})
    assert ids(sel) == {"tests/test_cart.py", "tests/test_checkout.py", "tests/test_util.py"}


def test_relative_imports_one_and_two_levels(repo: Repo) -> None:
    files = {
        "app/__init__.py": "", "app/core/__init__.py": "", "app/core/models.py": "X = 1\n",
        "app/api/__init__.py": "", "app/api/views.py": "from ..core.models import X\n",
        "app/api/routes.py": "from . import views\n",
        "tests/test_routes.py": "import app.api.routes\n\ndef test_r():\n    pass\n",
        "tests/test_none.py": "def test_n():\n    pass\n",
    }
    sel = change(repo, files, {"app/core/models.py": "X = 2\n"})
    assert ids(sel) == {"tests/test_routes.py"}
    assert reasons(sel, "tests/test_routes.py") == [
        "tests/test_routes.py -> app/api/routes.py -> app/api/views.py -> app/core/models.py (changed)"]


def test_src_layout(repo: Repo) -> None:
    files = {"src/lib/__init__.py": "", "src/lib/core.py": "A = 1\n",
             "tests/test_core.py": "from lib.core import A\n\ndef test_a():\n    assert A\n",
             "tests/test_x.py": "def test_x():\n    pass\n"}
    sel = change(repo, files, {"src/lib/core.py": "A = 2\n"})
    assert ids(sel) == {"tests/test_core.py"}


def test_namespace_package_without_init_files(repo: Repo) -> None:
    files = {"ns/plugins/alpha.py": "A = 1\n", "ns/plugins/beta.py": "B = 1\n",
             "tests/test_alpha.py": "from ns.plugins import alpha\n\ndef test_a():\n    pass\n",
             "tests/test_beta.py": "import ns.plugins.beta\n\ndef test_b():\n    pass\n"}
    sel = change(repo, files, {"ns/plugins/alpha.py": "A = 2\n"})
    assert ids(sel) == {"tests/test_alpha.py"}


def test_conftest_change_selects_every_test_below_its_folder(repo: Repo) -> None:
    files = {"tests/conftest.py": "", "tests/api/conftest.py": "",
             "tests/api/test_a.py": "def test_a():\n    pass\n",
             "tests/api/test_b.py": "def test_b():\n    pass\n",
             "tests/db/test_c.py": "def test_c():\n    pass\n"}
    sel = change(repo, files, {"tests/api/conftest.py": "import pytest\n"})
    assert ids(sel) == {"tests/api/test_a.py", "tests/api/test_b.py"}
    assert reasons(sel, "tests/api/test_a.py") == ["tests/api/test_a.py -> tests/api/conftest.py (changed)"]


def test_module_imported_by_conftest_reaches_tests_under_it(repo: Repo) -> None:
    files = {"fixtures/db.py": "URL = 'a'\n", "tests/conftest.py": "from fixtures import db\n",
             "tests/test_a.py": "def test_a():\n    pass\n"}
    sel = change(repo, files, {"fixtures/db.py": "URL = 'b'\n"})
    assert ids(sel) == {"tests/test_a.py"}


def test_new_and_modified_test_files_are_selected(repo: Repo) -> None:
    base = repo.commit(SHOP)
    head = repo.commit({"tests/test_other.py": "def test_nothing():\n    assert 1\n",
                        "tests/test_new.py": "def test_new():\n    pass\n"})
    sel = select_tests(repo.path, base, head)
    assert ids(sel) == {"tests/test_other.py", "tests/test_new.py"}
    assert reasons(sel, "tests/test_new.py") == ["new test file: tests/test_new.py"]


def test_changed_modules_own_test_file_is_selected_by_name(repo: Repo) -> None:
    files = {**SHOP, "tests/test_pricing.py": "def test_p():\n    pass\n"}  # no import of pricing
    sel = change(repo, files, {"shop/pricing.py": "RATE = 5\n\ndef price(x):\n    return x * RATE\n"})
    assert "tests/test_pricing.py" in ids(sel)
    assert reasons(sel, "tests/test_pricing.py") == ["named after changed module shop/pricing.py"]


def test_deleted_module_selects_its_importers(repo: Repo) -> None:
    base = repo.commit(SHOP)
    repo.delete("shop/util.py")
    head = repo.commit()
    sel = select_tests(repo.path, base, head)
    assert ids(sel) == {"tests/test_util.py"}
    assert reasons(sel, "tests/test_util.py") == ["tests/test_util.py -> shop/util.py (deleted)"]


def test_renamed_module_selects_importers_of_old_and_new_names(repo: Repo) -> None:
    base = repo.commit({**SHOP, "shop/util.py": "def noop():\n    return None\n" + "# padding\n" * 20})
    repo.git("mv", "shop/util.py", "shop/helpers.py")
    repo.write({"tests/test_helpers.py": "from shop.helpers import noop\n\ndef test_h():\n    pass\n"})
    head = repo.commit()
    sel = select_tests(repo.path, base, head)
    assert {"tests/test_util.py", "tests/test_helpers.py"} <= ids(sel)
    assert "tests/test_util.py -> shop/util.py (renamed to shop/helpers.py)" in reasons(sel, "tests/test_util.py")


def test_renamed_test_file_is_selected(repo: Repo) -> None:
    base = repo.commit({**SHOP, "tests/test_other.py": "def test_nothing():\n    assert True\n" * 5})
    repo.git("mv", "tests/test_other.py", "tests/test_renamed.py")
    sel = select_tests(repo.path, base, repo.commit())
    assert ids(sel) == {"tests/test_renamed.py"}


def test_computed_dynamic_import_selects_tests_reaching_the_loader(repo: Repo) -> None:
    files = {**SHOP, "shop/plugins.py": "import importlib\n\ndef load(name):\n"
                                         "    return importlib.import_module('shop.' + name)\n",
             "tests/test_plugins.py": "from shop.plugins import load\n\ndef test_l():\n    pass\n"}
    sel = change(repo, files, {"shop/util.py": "def noop():\n    return 2\n"})
    assert {"tests/test_util.py", "tests/test_plugins.py"} == ids(sel)
    assert any(r.strategy == "dynamic_import" for t in sel.selected if t.test_id == "tests/test_plugins.py"
               for r in t.reasons)


def test_changed_file_with_computed_import_is_unanalysable(repo: Repo) -> None:
    files = {**SHOP, "shop/plugins.py": "import importlib\n\ndef load(name):\n    return importlib.import_module(name)\n"}
    sel = change(repo, files, {"shop/plugins.py": "import importlib\n\ndef load(n):\n    return importlib.import_module(n)\n"})
    assert sel.unanalysable == ["shop/plugins.py"]
    assert ids(sel) == {"tests/test_cart.py", "tests/test_checkout.py", "tests/test_util.py", "tests/test_other.py"}


def test_working_tree_head(repo: Repo) -> None:
    base = repo.commit(SHOP)
    repo.write({"shop/util.py": "def noop():\n    return 3\n"})
    sel = select_tests(repo.path, base, None)
    assert ids(sel) == {"tests/test_util.py"}
    assert sel.head == "WORKTREE" and sel.head_commit == ""
    assert sel.base_commit == base


def test_no_change_selects_nothing(repo: Repo) -> None:
    base = repo.commit(SHOP)
    sel = select_tests(repo.path, base, base)
    assert sel.selected == []
    assert len(sel.skipped) == 4


def test_module_no_test_imports_is_unanalysable(repo: Repo) -> None:
    files = {**SHOP, "scripts/migrate.py": "import sys\nprint(sys.argv)\n"}
    sel = change(repo, files, {"scripts/migrate.py": "import sys\nprint(sys.argv[1:])\n"})
    assert sel.unanalysable == ["scripts/migrate.py"]
    assert len(sel.selected) == 4
    assert reasons(sel, "tests/test_other.py") == [
        "unanalysable change: scripts/migrate.py (no test imports it and no file names it)"]


def test_module_loaded_only_by_name_is_not_missed(repo: Repo) -> None:
    files = {**SHOP, "shop/plugin.py": "def hook():\n    return 1\n",
             "tests/test_plugin_by_name.py": "import subprocess\n\ndef test_p():\n"
                                             "    subprocess.run(['pytest', '-p', 'shop.plugin'])\n"}
    sel = change(repo, files, {"shop/plugin.py": "def hook():\n    return 2\n"})
    assert "tests/test_plugin_by_name.py" in ids(sel)


def test_deleting_a_module_no_test_imports_is_unanalysable(repo: Repo) -> None:
    base = repo.commit({**SHOP, "shop/legacy.py": "OLD = 1\n"})
    repo.delete("shop/legacy.py")
    sel = select_tests(repo.path, base, repo.commit())
    assert sel.unanalysable == ["shop/legacy.py"]
    assert len(sel.selected) == 4


def test_module_named_in_a_test_selects_that_test(repo: Repo) -> None:
    files = {**SHOP, "shop/plugin.py": "def hook():\n    return 1\n",
             "tests/test_by_name.py": "import subprocess\n\ndef test_p():\n"
                                      "    subprocess.run(['pytest', '-p', 'shop.plugin'])\n"}
    sel = change(repo, files, {"shop/plugin.py": "def hook():\n    return 2\n"})
    assert ids(sel) == {"tests/test_by_name.py"}
    assert reasons(sel, "tests/test_by_name.py") == ["tests/test_by_name.py names shop/plugin.py (changed)"]


def test_module_named_in_code_selects_the_tests_reaching_that_code(repo: Repo) -> None:
    files = {**SHOP, "shop/plugin.py": "X = 1\n",
             "shop/settings.py": "PLUGINS = ['shop.plugin']\n",
             "tests/test_settings.py": "from shop import settings\n\ndef test_s():\n    pass\n"}
    sel = change(repo, files, {"shop/plugin.py": "X = 2\n"})
    assert ids(sel) == {"tests/test_settings.py"}
    assert reasons(sel, "tests/test_settings.py") == [
        "tests/test_settings.py -> shop/settings.py (names shop/plugin.py (changed))"]


def test_module_named_in_a_config_file_selects_that_apps_suite(repo: Repo) -> None:
    files = {**SHOP, "shop/plugin.py": "X = 1\n", "setup.cfg": "[options.entry_points]\nx = shop.plugin:X\n"}
    sel = change(repo, files, {"shop/plugin.py": "X = 2\n"})
    assert len(sel.selected) == 4
    assert reasons(sel, "tests/test_other.py") == ["unanalysable change: shop/plugin.py (named in setup.cfg)"]


def test_reasons_come_closest_evidence_first(repo: Repo) -> None:
    files = {**SHOP, "tests/test_pricing.py": "from shop.checkout import pay\n\ndef test_p():\n    pass\n",
             "config.yaml": "a: 1\n"}
    sel = change(repo, files, {"shop/pricing.py": "RATE = 5\n\ndef price(x):\n    return x * RATE\n",
                               "config.yaml": "a: 2\n"})
    assert [r.strategy for t in sel.selected if t.test_id == "tests/test_pricing.py" for r in t.reasons] == [
        "name_match", "import_graph", "unanalysable"]
    assert sel.selected[0].test_id == "tests/test_pricing.py"
