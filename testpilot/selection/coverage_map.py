"""Which tests executed which lines, from coverage.py data with one dynamic context per test.

Collect it on a full run with ``coverage run -m pytest -p testpilot.selection.coverage_plugin`` (or
pytest-cov's ``--cov-context=test``), then ``coverage_map_from_data(".coverage", ...)``. The map is
stored per commit as JSON. Lines run with no test context (module import time) cannot be tied to a
test, so a change there makes the engine use the import graph for that file instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel, Field

IMPORT_TIME = ""  # coverage's context for lines run outside any test (collection, imports)


class CoverageMap(BaseModel):
    """``files[path][line]`` lists indexes into ``contexts`` (test node ids, '' = import time)."""

    commit: str = Field(description="Commit the coverage was collected at.")
    app: str = Field(description="App whose tests the node ids belong to (relative to its folder).")
    contexts: list[str] = Field(default_factory=list)
    files: dict[str, dict[int, list[int]]] = Field(default_factory=dict, description="Repo-relative paths.")

    def tests_for(self, path: str, line: int) -> list[str] | None:
        """Contexts that ran ``line``; None when the line was never run."""
        lines = self.files.get(path)
        if lines is None or line not in lines:
            return None
        return [self.contexts[i] for i in lines[line]]


_PHASES = ("|run", "|setup", "|teardown")


def _context_test(context: str) -> str:
    # pytest-cov writes "tests/test_a.py::test_x|run"; setup and teardown phases count as the test. Only
    # those suffixes are cut: a parametrised id may itself contain "|" ("test_x[a|b]").
    for phase in _PHASES:
        if context.endswith(phase):
            return context[:-len(phase)]
    return context


def coverage_map_from_data(data_file: str | Path, *, repo_root: Path, commit: str, app: str) -> CoverageMap:
    """Read a ``.coverage`` file measured with per-test contexts into a CoverageMap."""
    from coverage import CoverageData  # imported here: only needed when coverage is used

    data = CoverageData(basename=str(data_file))
    data.read()
    contexts: list[str] = []
    index: dict[str, int] = {}
    files: dict[str, dict[int, list[int]]] = {}
    root = repo_root.resolve()
    for filename in data.measured_files():
        path = Path(filename)
        try:
            rel = (path if path.is_absolute() else (root / path)).resolve().relative_to(root).as_posix()
        except ValueError:
            continue  # outside the repository (site-packages)
        lines: dict[int, list[int]] = {}
        for lineno, ctxs in data.contexts_by_lineno(filename).items():
            ids = set()
            for ctx in ctxs:
                test = _context_test(ctx)
                if test not in index:
                    index[test] = len(contexts)
                    contexts.append(test)
                ids.add(index[test])
            lines[lineno] = sorted(ids)
        files[rel] = lines
    return CoverageMap(commit=commit, app=app, contexts=contexts, files=files)


def statement_spans(source: bytes, lines: set[int]) -> set[tuple[int, int]] | None:
    """For each changed line, the (first, last) lines of the innermost statement containing it,
    decorators included. Lines in no statement (comments, blank lines) drop out. None if the source
    does not parse. Coverage records a statement on one of its lines, so callers look at the span."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    best: dict[int, tuple[int, int]] = {}  # line -> (first, last) of the innermost statement
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        end = node.end_lineno or node.lineno
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        for line in lines:
            if first <= line <= end and (line not in best or end - first < best[line][1] - best[line][0]):
                best[line] = (first, end)
    return set(best.values())
