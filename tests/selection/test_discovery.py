"""Zero-config mode: pytest's own settings decide where the tests are."""

from __future__ import annotations

import pytest

from testpilot.selection import select_tests
from testpilot.selection.discovery import DEFAULT_APP, read_pytest_config

from .helpers import Repo

SOURCE = {"lib/core.py": "X = 1\n",
          "checks/check_core.py": "from lib.core import X\n\ndef test_x():\n    assert X\n",
          "checks/test_core.py": "from lib.core import X\n\ndef test_y():\n    assert X\n",
          "other/check_core.py": "from lib.core import X\n\ndef test_z():\n    assert X\n"}

CONFIGS = {
    "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["checks"]\npython_files = ["check_*.py"]\n',
    "pytest.ini": "[pytest]\ntestpaths = checks\npython_files = check_*.py\n",
    "setup.cfg": "[tool:pytest]\ntestpaths = checks\npython_files = check_*.py\n",
    "tox.ini": "[tox]\nenvlist = py311\n\n[pytest]\ntestpaths = checks\npython_files = check_*.py\n",
}


@pytest.mark.parametrize("config_file", sorted(CONFIGS))
def test_testpaths_and_python_files_from_each_config_kind(repo: Repo, config_file: str) -> None:
    base = repo.commit({**SOURCE, config_file: CONFIGS[config_file]})
    head = repo.commit({"lib/core.py": "X = 2\n"})
    sel = select_tests(repo.path, base, head)
    assert {(t.app, t.test_id) for t in sel.selected} == {(DEFAULT_APP, "checks/check_core.py")}


def test_defaults_without_any_config(repo: Repo) -> None:
    base = repo.commit(SOURCE)
    head = repo.commit({"lib/core.py": "X = 2\n"})
    assert {t.test_id for t in select_tests(repo.path, base, head).selected} == {"checks/test_core.py"}


def test_pytest_ini_wins_even_without_a_section() -> None:
    files = {"pytest.ini": b"# empty\n", "pyproject.toml": CONFIGS["pyproject.toml"].encode()}
    config = read_pytest_config("", files.get)
    assert config.source == "pytest.ini"
    assert config.testpaths == []


def test_pyproject_without_pytest_section_falls_through_to_setup_cfg() -> None:
    files = {"pyproject.toml": b"[project]\nname = 'x'\n", "setup.cfg": CONFIGS["setup.cfg"].encode()}
    config = read_pytest_config("", files.get)
    assert config.source == "setup.cfg"
    assert config.python_files == ["check_*.py"]


def test_pythonpath_option_is_an_import_root(repo: Repo) -> None:
    files = {"pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["code"]\n',
             "code/engine.py": "E = 1\n", "tests/test_engine.py": "import engine\n\ndef test_e():\n    pass\n",
             "tests/test_plain.py": "def test_p():\n    pass\n"}
    base = repo.commit(files)
    head = repo.commit({"code/engine.py": "E = 2\n"})
    sel = select_tests(repo.path, base, head)
    assert {t.test_id for t in sel.selected} == {"tests/test_engine.py"}
    assert sel.selected[0].reasons[0].strategy == "name_match" or sel.selected[0].reasons[0].chain


def test_project_in_a_subfolder_of_the_repository(repo: Repo) -> None:
    files = {f"proj/{k}": v for k, v in SOURCE.items()}
    base = repo.commit({**files, "elsewhere/notes.txt": "a"})
    head = repo.commit({"proj/lib/core.py": "X = 2\n", "elsewhere/notes.txt": "b"})
    sel = select_tests(repo.path / "proj", base, head)
    assert {t.test_id for t in sel.selected} == {"checks/test_core.py"}
    assert sel.unanalysable == []
    assert any("outside the project folder" in note for note in sel.notes)
