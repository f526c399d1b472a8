"""Extract the imports of one Python source file.

The result is plain tuples so the blob-hash cache can store it with ``marshal``. A fast line scan
handles ordinary files; anything unusual (imports after ``;`` or ``:``, ``importlib``, ``__import__``,
``pytest_plugins``, text that does not parse) goes through a full ``ast`` parse. The scan may see
imports inside docstrings, which only adds edges: it can widen a selection, never narrow it.
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

# One import: (level, module, names). ``import a.b`` -> (0, "a.b", ()); ``from ..x import y`` ->
# (2, "x", ("y",)); ``from . import m`` -> (1, "", ("m",)).
ImportEntry = tuple[int, str, tuple[str, ...]]


class ParsedImports(NamedTuple):
    imports: tuple[ImportEntry, ...]
    dynamic: bool  # a non-literal importlib / __import__ call: the file may load anything
    error: str  # non-empty when the source could not be parsed


_NEEDS_AST = ("__import__", "import_module", "importlib", "pytest_plugins", "run_path", "run_module",
              "spec_from_file_location")
_WORD_IMPORT = re.compile(r"\bimport\b")
_STATEMENT = re.compile(r"^[ \t]*(?:from[ \t]+[.\w]+[ \t]+import\b|import\b)")
_DYNAMIC_CALLS = {"__import__", "import_module", "run_module", "run_path", "spec_from_file_location"}


def parse_imports(source: str | bytes) -> ParsedImports:
    """Return the imports of ``source``; never raises."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    # A backslash continuation can split "from a \\ import b" so no line starts an import statement.
    if not any(word in text for word in _NEEDS_AST) and "\\\n" not in text:
        fast = _scan(text)
        if fast is not None:
            return fast
    return _full_parse(text)


def _scan(text: str) -> ParsedImports | None:
    """Line scan; returns None when the file needs a full parse to be read safely."""
    if "import" not in text:
        return ParsedImports((), False, "")
    lines = text.splitlines()
    entries: list[ImportEntry] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not _WORD_IMPORT.search(line):
            i += 1
            continue
        if not _STATEMENT.match(line):
            return None
        statement = [line.strip()]
        depth = line.count("(") - line.count(")")
        while (depth > 0 or statement[-1].endswith("\\")) and i + 1 < len(lines):
            i += 1
            statement.append(lines[i].strip())
            depth += lines[i].count("(") - lines[i].count(")")
        try:
            tree = ast.parse("\n".join(statement))
        except SyntaxError:
            return None
        entries.extend(_entries(tree))
        i += 1
    return ParsedImports(tuple(entries), False, "")


def _full_parse(text: str) -> ParsedImports:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        return ParsedImports((), False, f"{type(exc).__name__}: {exc}")
    entries = list(_entries(tree))
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in _DYNAMIC_CALLS:
                literal = _literal_str(node.args[0]) if node.args else None
                if literal is None or name in ("run_path", "spec_from_file_location"):
                    dynamic = True
                else:
                    level = len(literal) - len(literal.lstrip("."))
                    entries.append((level, literal.lstrip("."), ()))
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            for value in values:
                literal = _literal_str(value)
                if literal is None:
                    dynamic = True
                else:
                    entries.append((0, literal, ()))
    return ParsedImports(tuple(entries), dynamic, "")


def _entries(tree: ast.AST) -> list[ImportEntry]:
    found: list[ImportEntry] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
    return found


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _literal_str(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
