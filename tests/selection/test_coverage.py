"""The coverage-map strategy, from a real coverage.py run with one context per test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testpilot.selection import CoverageMap, coverage_map_from_data, explain_test, select_tests
from testpilot.selection.coverage_map import statement_spans

from .helpers import Repo

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
FILES = {
    "shop/__init__.py": "", "shop/calc.py": CALC,
    "tests/test_calc.py": "from shop.calc import add, mul\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
                          "def test_mul():\n    assert mul(2, 3) == 6\n",
    "tests/test_other.py": "import shop.calc\n\n\ndef test_other():\n    assert shop.calc\n",
}


def collect(repo: Repo, tmp_path: Path, commit: str) -> CoverageMap:
    data = tmp_path / "cov.data"
    env = {**os.environ, "COVERAGE_FILE": str(data), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "testpilot.selection.coverage_plugin", "tests"], cwd=repo.path, env=env, check=True,
                   capture_output=True)
    return coverage_map_from_data(data, repo_root=repo.path, commit=commit, app="default")


def test_coverage_map_records_tests_per_line(repo: Repo, tmp_path: Path) -> None:
    base = repo.commit(FILES)
    cov = collect(repo, tmp_path, base)
    assert cov.tests_for("shop/calc.py", 6) == ["tests/test_calc.py::test_mul"]
    assert cov.tests_for("shop/calc.py", 1) == [""]  # the def runs at import time
    assert CoverageMap.model_validate_json(cov.model_dump_json()) == cov


def test_changed_line_selects_only_the_tests_that_ran_it(repo: Repo, tmp_path: Path) -> None:
    base = repo.commit(FILES)
    cov = collect(repo, tmp_path, base)
    head = repo.commit({"shop/calc.py": CALC.replace("a * b", "a * b * 1")})
    without = select_tests(repo.path, base, head)
    assert {t.test_id for t in without.selected} == {"tests/test_calc.py", "tests/test_other.py"}
    sel = select_tests(repo.path, base, head, coverage=cov)
    assert [t.test_id for t in sel.selected] == ["tests/test_calc.py::test_mul"]
    assert sel.selected[0].reasons[0].text == "ran changed lines of shop/calc.py: 6"
    assert sel.selected[0].reasons[0].lines == [6]
    exp = explain_test(repo.path, "tests/test_calc.py::test_add", base, head, coverage=cov)
    assert exp.status == "skipped"


def test_import_time_change_falls_back_to_the_import_graph(repo: Repo, tmp_path: Path) -> None:
    base = repo.commit(FILES)
    cov = collect(repo, tmp_path, base)
    head = repo.commit({"shop/calc.py": CALC.replace("def mul(a, b)", "def mul(a, b=1)")})
    sel = select_tests(repo.path, base, head, coverage=cov)
    assert {t.test_id for t in sel.selected} == {"tests/test_calc.py", "tests/test_other.py"}
    assert not any(r.strategy == "coverage" for t in sel.selected for r in t.reasons)


def test_coverage_older_than_the_change_falls_back_for_files_changed_since(repo: Repo, tmp_path: Path) -> None:
    old = repo.commit(FILES)
    cov = collect(repo, tmp_path, old)
    base = repo.commit({"shop/calc.py": "\n\n" + CALC})  # line numbers moved since the coverage run
    head = repo.commit({"shop/calc.py": "\n\n" + CALC.replace("a + b", "a - b")})
    sel = select_tests(repo.path, base, head, coverage=cov)
    assert {t.test_id for t in sel.selected} == {"tests/test_calc.py", "tests/test_other.py"}


def test_tests_changed_since_the_coverage_run_keep_graph_evidence(repo: Repo, tmp_path: Path) -> None:
    old = repo.commit(FILES)
    cov = collect(repo, tmp_path, old)
    base = repo.commit({"tests/test_other.py": "from shop.calc import mul\n\n\ndef test_other():\n"
                                               "    assert mul(1, 1)\n"})
    head = repo.commit({"shop/calc.py": CALC.replace("a * b", "a * b * 1")})
    sel = select_tests(repo.path, base, head, coverage=cov)
    assert {t.test_id for t in sel.selected} == {"tests/test_calc.py::test_mul", "tests/test_other.py"}


def test_unknown_coverage_commit_is_ignored_with_a_note(repo: Repo) -> None:
    base = repo.commit(FILES)
    head = repo.commit({"shop/calc.py": CALC.replace("a * b", "a * b * 1")})
    cov = CoverageMap(commit="0" * 40, app="default", files={"shop/calc.py": {6: [0]}}, contexts=["x"])
    sel = select_tests(repo.path, base, head, coverage=cov)
    assert len(sel.selected) == 2
    assert any("not in the repository" in n for n in sel.notes)


def test_statement_spans_map_continuation_lines_to_their_statement() -> None:
    source = b"x = (1 +\n     2)\n# comment\n\n@deco\ndef f():\n    return 1\n"
    assert statement_spans(source, {2}) == {(1, 2)}
    assert statement_spans(source, {3}) == set()
    assert statement_spans(source, {5}) == {(5, 7)}
    assert statement_spans(source, {7}) == {(7, 7)}
    assert statement_spans(b"def (:\n", {1}) is None
