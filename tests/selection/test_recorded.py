"""Selection from per-test records: a real pytest run records, a real git change is selected for."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from flows.cli import main
from testpilot.selection import select_tests
from testpilot.selection.record import LocalStore, app_key
from testpilot.selection.recording import record_repo

from .helpers import Repo

PROJECT = {
    "pytest.ini": "[pytest]\npythonpath = .\n",
    "shop/__init__.py": "",
    "shop/pricing.py": "RATE = 2\n\n\ndef price(x):\n    return x * RATE\n\n\ndef discount(x):\n    return x - 1\n",
    "shop/cart.py": "from shop.pricing import price\n\n\ndef total(items):\n    return sum(price(i) for i in items)\n",
    "shop/util.py": "def noop():\n    return None\n",
    "shop/data/names.txt": "alice\nbob\n",
    "tests/conftest.py": "import pytest\nfrom shop import util\n\n\n@pytest.fixture(scope='session')\n"
                         "def shared():\n    return util.noop()\n",
    "tests/test_cart.py": "from shop.cart import total\n\n\ndef test_total():\n    assert total([1, 2]) == 6\n",
    "tests/test_discount.py": "import pytest\nfrom shop.pricing import discount\n\n\n"
                              "@pytest.mark.parametrize('x', ['a|b', 'c'])\ndef test_discount(x):\n"
                              "    assert discount(3) == 2\n",
    "tests/test_shared.py": "def test_one(shared):\n    assert shared is None\n\n\n"
                            "def test_two(shared):\n    assert shared is None\n",
    "tests/test_names.py": "from pathlib import Path\n\n\ndef test_names():\n"
                           "    assert 'bob' in (Path(__file__).parent.parent / 'shop/data/names.txt').read_text()\n",
}


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, Path, str]:
    repo = Repo(tmp_path_factory.mktemp("recorded") / "repo")
    repo.commit(PROJECT)
    home = tmp_path_factory.mktemp("home")
    where, part, code = record_repo(repo.path, home, python=sys.executable,
                                    pytest_args=["-q", "-p", "no:cacheprovider"])
    assert code == 0 and where.exists()
    assert len(part.tests) == 6
    return repo, home, part.commit


@pytest.fixture
def recorded(recorded_once: tuple[Repo, Path, str], tmp_path: Path) -> tuple[Repo, Path]:
    """The recorded repository at its recorded commit, with a home of its own for this test."""
    import shutil

    repo, home, commit = recorded_once
    repo.git("reset", "-q", "--hard", commit)
    repo.git("clean", "-qfdx")
    mine = tmp_path / "home"
    shutil.copytree(home, mine)
    return repo, mine


def chosen(repo: Repo, home: Path, base: str = "HEAD") -> dict[str, list[str]]:
    sel = select_tests(repo.path, base, None, record_store=home)
    return {t.test_id: [r.text for r in t.reasons] for t in sel.selected}


def test_changed_function_selects_only_the_tests_that_ran_it(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"shop/pricing.py": PROJECT["shop/pricing.py"].replace("x - 1", "x - 2")})
    picked = chosen(repo, home)
    assert set(picked) == {"tests/test_discount.py::test_discount[a|b]", "tests/test_discount.py::test_discount[c]"}
    assert picked["tests/test_discount.py::test_discount[c]"] == ["ran shop/pricing.py::discount (changed)"]


def test_constant_read_only_in_functions_selects_the_tests_that_ran_them(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"shop/pricing.py": PROJECT["shop/pricing.py"].replace("RATE = 2", "RATE = 3")})
    picked = chosen(repo, home)
    assert list(picked) == ["tests/test_cart.py::test_total"]
    assert "reads RATE (changed in shop/pricing.py)" in picked["tests/test_cart.py::test_total"][0]


def test_other_module_level_change_selects_the_session_that_imported_it(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"shop/pricing.py": "import os\n" + PROJECT["shop/pricing.py"]})
    picked = chosen(repo, home)
    assert len(picked) == 6
    assert any("module-level change in shop/pricing.py" in t for t in picked["tests/test_names.py::test_names"])


def test_session_fixture_dependencies_count_for_every_test_using_it(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"shop/util.py": "def noop():\n    return 0 and None\n"})
    assert set(chosen(repo, home)) == {"tests/test_shared.py::test_one", "tests/test_shared.py::test_two"}


def test_data_file_selects_the_tests_that_opened_it(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"shop/data/names.txt": "alice\n"})
    picked = chosen(repo, home)
    assert picked == {"tests/test_names.py::test_names": ["opened shop/data/names.txt (changed)"]}


def test_new_test_file_without_a_record_selects_itself(recorded: tuple[Repo, Path]) -> None:
    repo, home = recorded
    repo.write({"tests/test_new.py": "def test_new():\n    assert True\n",
                "shop/util.py": "def noop():\n    return 0 and None\n"})
    picked = chosen(repo, home)
    assert "tests/test_new.py" in picked


def test_record_of_an_ancestor_is_found_and_parts_merge(recorded: tuple[Repo, Path], tmp_path: Path) -> None:
    repo, home = recorded
    first = repo.git("rev-parse", "HEAD")
    repo.commit({"README.md": "docs\n"})
    repo.write({"shop/pricing.py": PROJECT["shop/pricing.py"].replace("x - 1", "x - 2")})
    assert len(chosen(repo, home)) == 2  # HEAD has no record; its parent's is used
    _, part, _ = record_repo(repo.path, home, python=sys.executable,
                             pytest_args=["-q", "-p", "no:cacheprovider", "tests/test_cart.py"])
    assert part.commit != first and list(part.tests) == ["tests/test_cart.py::test_total"]
    store = LocalStore(home)
    assert sorted(store.commits(app_key("default", ""))) == sorted([first, part.commit])
    assert len(chosen(repo, home)) == 2  # the discount tests keep their record from the parent commit


def test_without_a_record_the_graph_is_used_and_the_output_says_how_to_record(repo: Repo, tmp_path: Path) -> None:
    repo.commit(PROJECT)
    repo.write({"shop/pricing.py": PROJECT["shop/pricing.py"].replace("x - 1", "x - 2")})
    sel = select_tests(repo.path, "HEAD", None, record_store=tmp_path / "empty")
    assert any("testpilot record" in note for note in sel.notes)
    assert {t.reasons[0].strategy for t in sel.selected} <= {"import_graph", "name_match"}


def test_cli_record_then_select(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit(PROJECT)
    monkeypatch.setenv("TESTPILOT_HOME", str(tmp_path / "home"))
    assert main(["record", "--repo", str(repo.path), "--python", sys.executable, "--", "-q",
                 "-p", "no:cacheprovider"]) == 0
    assert "recorded 6 test(s)" in capsys.readouterr().out
    repo.write({"shop/pricing.py": PROJECT["shop/pricing.py"].replace("x - 1", "x - 2")})
    assert main(["select", "--repo", str(repo.path), "--base", "HEAD", "--format", "pytest-args"]) == 0
    out = shlex.split(capsys.readouterr().out)
    assert sorted(out) == ["tests/test_discount.py::test_discount[a|b]", "tests/test_discount.py::test_discount[c]"]


def test_record_reports_a_pytest_that_never_ran(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit(PROJECT)
    monkeypatch.setenv("TESTPILOT_HOME", str(tmp_path / "home"))
    assert main(["record", "--repo", str(repo.path), "--python", sys.executable, "--", "--no-such-option"]) == 3
    assert "nothing was recorded" in capsys.readouterr().err


LAZY = {
    "pytest.ini": "[pytest]\npythonpath = .\n",
    # The package root loads its submodules on first attribute access, by a computed name: the static graph
    # cannot see which test reaches which submodule, so without a record any change selects every test.
    "lazy/__init__.py": "import importlib\n\n\ndef __getattr__(name):\n"
                        "    return importlib.import_module(f'lazy.{name}')\n",
    "lazy/alpha.py": "def double(x):\n    return 2 * x\n",
    "lazy/beta.py": "def negate(x):\n    return -x\n",
    "tests/test_alpha.py": "import lazy\n\n\ndef test_double():\n    assert lazy.alpha.double(2) == 4\n",
    "tests/test_beta.py": "import lazy\n\n\ndef test_negate():\n    assert lazy.beta.negate(2) == -2\n",
}


def test_a_dynamic_loader_selects_only_the_tests_whose_record_shows_they_loaded_it(repo: Repo, tmp_path: Path) -> None:
    repo.commit(LAZY)
    home = tmp_path / "home"
    _, part, code = record_repo(repo.path, home, python=sys.executable, pytest_args=["-q", "-p", "no:cacheprovider"])
    assert code == 0 and len(part.tests) == 2
    repo.write({"lazy/alpha.py": LAZY["lazy/alpha.py"].replace("2 * x", "x + x")})
    assert chosen(repo, home) == {"tests/test_alpha.py::test_double": ["ran lazy/alpha.py::double (changed)"]}
    # Without the record the static graph stays the safe fallback: both tests reach the dynamic root.
    unrecorded = select_tests(repo.path, "HEAD", None, record_store=tmp_path / "empty")
    assert {t.test_id for t in unrecorded.selected} >= {"tests/test_alpha.py", "tests/test_beta.py"}
