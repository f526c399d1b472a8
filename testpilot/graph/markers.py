"""Static scan of ``@pytest.mark.depends_on("...")`` markers, without importing the tests.

Importing an app's tests would need the app's own virtualenv; the ``ast`` module reads them safely from
any interpreter. Handles function, method and class decorators and module-level ``pytestmark``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

MARKER = "depends_on"


def _is_depends_on(expr: ast.expr) -> list[str] | None:
    """The string arguments of ``pytest.mark.depends_on(...)`` / ``mark.depends_on(...)``, else None."""
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == MARKER):
        return None
    owner = expr.func.value
    is_mark = (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark")
    if not is_mark:
        return None
    args: list[str] = []
    for arg in expr.args:
        items = arg.elts if isinstance(arg, ast.List | ast.Tuple) else [arg]
        args.extend(i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str))
    return args


def _marks(exprs: Iterable[ast.expr]) -> list[str]:
    found: list[str] = []
    for expr in exprs:
        found.extend(_is_depends_on(expr) or [])
    return found


def _pytestmark(body: list[ast.stmt]) -> list[str]:
    found: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in stmt.targets):
            value = stmt.value
            found.extend(_marks(value.elts if isinstance(value, ast.List | ast.Tuple) else [value]))
    return found


def _resolve(dep: str, file_id: str) -> str:
    # A bare name ("test_login") or "::Class::test" means a test in the same file.
    if dep.startswith("::"):
        return file_id + dep
    if "::" not in dep and "/" not in dep and not dep.endswith(".py"):
        return f"{file_id}::{dep}"
    return dep


def scan_source(source: str, file_id: str) -> dict[str, list[str]]:
    """Node id -> declared dependencies for one test file's source. ``file_id`` is its path relative
    to the app (the node id prefix). Raises SyntaxError for unparsable source."""
    tree = ast.parse(source, filename=file_id)
    result: dict[str, list[str]] = {}
    module_deps = _pytestmark(tree.body)

    def visit(body: list[ast.stmt], prefix: str, inherited: list[str]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name.startswith("test"):
                deps = [*inherited, *_marks(stmt.decorator_list)]
                if deps:
                    node_id = f"{prefix}::{stmt.name}"
                    result[node_id] = list(dict.fromkeys(_resolve(d, file_id) for d in deps))
            elif isinstance(stmt, ast.ClassDef) and stmt.name.startswith("Test"):
                visit(stmt.body, f"{prefix}::{stmt.name}",
                      [*inherited, *_marks(stmt.decorator_list), *_pytestmark(stmt.body)])

    visit(tree.body, file_id, module_deps)
    return result


def _test_files(root: Path, test_paths: Iterable[str]) -> Iterable[Path]:
    for rel in test_paths:
        base = root / rel
        if base.is_file():
            yield base
        elif base.is_dir():
            for path in sorted(base.rglob("*.py")):
                if path.name.startswith("test_") or path.name.endswith("_test.py"):
                    yield path


def scan_markers(app_dir: str | Path, test_paths: Iterable[str] = ("tests/",)) -> dict[str, list[str]]:
    """Node id -> dependencies from every ``depends_on`` marker in the app's test files.

    Files that do not parse are left out: pytest reports them itself when the shard runs.
    """
    root = Path(app_dir)
    result: dict[str, list[str]] = {}
    for path in _test_files(root, test_paths):
        file_id = path.relative_to(root).as_posix()
        try:
            result.update(scan_source(path.read_text(encoding="utf-8", errors="replace"), file_id))
        except SyntaxError:
            continue
    return result
