"""Per-test dependency recording: which functions of the repository each test ran, which repository
files it opened, and what the session imported.

Standalone on purpose (stdlib only): Testpilot copies this file next to its pytest plugin on remote
hosts as ``testpilot_recorder.py``; the selection engine imports the same fingerprint code from here.

How it stays cheap on Python 3.11 (no ``sys.monitoring``): tracing hooks (``sys.settrace``, coverage's
C tracer, ``sys.setprofile``) switch the interpreter into its tracing mode, which de-specialises every
instruction; measured on sqlparse's suite that costs ~140 %. Instead the repository's own modules are
compiled with one extra statement at the top of every function body, ``__testpilot_hit__["path::qualname"]
= 1`` (a dict store into a builtins dict: ~20 ns a call, specialisation intact), and the plugin swaps the
dict per test. Module bodies get the same marker (``path::<module>``). Files opened are seen by an audit
hook on ``open``, directory listings on ``os.listdir``/``os.scandir``, child processes on
``subprocess.Popen``/``os.system``/``os.exec``/``os.posix_spawn`` (recording cannot follow them), network
connections on ``socket.connect`` (the only way a test reaches another app's service).

Fingerprints: a function's fingerprint hashes ``ast.dump`` of its definition with nested function bodies
and its docstring left out, so an edit elsewhere in the file (or in a nested function) leaves it alone.
The module fingerprint hashes the module with every function body left out: it changes with constants,
class bodies, signatures, decorators and imports.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import marshal
import os
import sys
from collections.abc import Iterator
from importlib.machinery import PathFinder, SourceFileLoader
from typing import Any

MARK = "__testpilot_hit__"
MODULE = "<module>"
VERSION = 1
FuncDef = (ast.FunctionDef, ast.AsyncFunctionDef)
SKIP_DIRS = {".git", ".hg", ".tox", ".nox", ".venv", "venv", "env", "site-packages", "node_modules", "build",
             "dist", "__pycache__", ".eggs", ".mypy_cache", ".pytest_cache"}


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _inner_defs(node: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Function definitions reachable from ``node`` without entering another function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, FuncDef):
            yield child
        else:
            yield from _inner_defs(child)


def _dump_without_bodies(node: ast.AST, own_docstring: bool) -> str:
    inner = list(_inner_defs(node))
    saved = [d.body for d in inner]
    own = getattr(node, "body", None)
    try:
        for d in inner:
            d.body = []
        if own_docstring and isinstance(node, FuncDef) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:]
        return ast.dump(node)
    finally:
        for d, body in zip(inner, saved, strict=True):
            d.body = body
        if own is not None:
            node.body = own  # type: ignore[attr-defined]


def function_units(tree: ast.Module) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualname, node) for every function, as ``co_qualname`` spells it; repeats get ``#2``, ``#3``."""
    out: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FuncDef):
                qual = prefix + child.name
                seen[qual] = seen.get(qual, 0) + 1
                out.append((qual if seen[qual] == 1 else f"{qual}#{seen[qual]}", child))
                walk(child, qual + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def fingerprints(tree: ast.Module) -> dict[str, str]:
    """qualname -> fingerprint for every function, and ``<module>`` for everything outside them."""
    fps = {qual: _hash(_dump_without_bodies(node, True)) for qual, node in function_units(tree)}
    fps[MODULE] = _hash(_dump_without_bodies(tree, False))
    return fps


def source_fingerprints(source: bytes | str) -> dict[str, str] | None:
    try:
        return fingerprints(ast.parse(source))
    except (SyntaxError, ValueError):
        return None


def instrument(tree: ast.Module, rel: str) -> ast.Module:
    """Insert the hit marker at the top of every function body and of the module."""
    def marker(qual: str, like: ast.AST) -> ast.stmt:
        stmt = ast.Assign(targets=[ast.Subscript(value=ast.Name(id=MARK, ctx=ast.Load()),
                                                 slice=ast.Constant(value=f"{rel}::{qual}"), ctx=ast.Store())],
                          value=ast.Constant(value=1))
        return ast.copy_location(stmt, like)

    for qual, node in function_units(tree):
        at = 1 if ast.get_docstring(node, clean=False) is not None else 0
        node.body.insert(at, marker(qual, node.body[0]))
    body = tree.body
    at = 1 if ast.get_docstring(tree, clean=False) is not None else 0
    while at < len(body) and isinstance(body[at], ast.ImportFrom) and getattr(body[at], "module", "") == "__future__":
        at += 1
    if body:
        body.insert(at, marker(MODULE, body[min(at, len(body) - 1)]))
    ast.fix_missing_locations(tree)
    return tree


class Recorder:
    """The state of one recording session; the pytest plugin drives it."""

    def __init__(self, root: str, cache_dir: str | None = None, test_patterns: tuple[str, ...] = ()) -> None:
        self.root = os.path.realpath(root)
        self.prefix = self.root + os.sep
        self.cache_dir = cache_dir
        self.test_patterns = test_patterns
        self.hits: dict[str, int] = {}
        self.units: dict[str, dict[str, str]] = {}  # rel path -> qualname -> fingerprint
        self.context: dict[str, set[str]] | None = None  # opened/listed/spawned of the running test
        self.session: dict[str, set[str]] = {k: set() for k in ("units", "opened", "listed", "spawned", "connected")}
        self._rel: dict[str, str | None] = {}
        self.results: dict[str, dict[str, set[str]]] = {}  # node id -> what it used
        self.fixtures: dict[int, set[str]] = {}  # id(fixture definition) -> functions its setup ran
        self.started = 0.0
        setattr(builtins, MARK, self.hits)

    # -- which files are ours -------------------------------------------------------------------
    def rel(self, path: str) -> str | None:
        """``path`` relative to the root, or None when outside it (or in a virtualenv, build folder...)."""
        known = self._rel.get(path)
        if known is not None or path in self._rel:
            return known
        real = os.path.realpath(path)
        rel = None
        if real.startswith(self.prefix):
            rel = real[len(self.prefix):].replace(os.sep, "/")
            if any(part in SKIP_DIRS for part in rel.split("/")[:-1]):
                rel = None
        self._rel[path] = rel
        return rel

    def instrumentable(self, rel: str) -> bool:
        import fnmatch

        name = rel.rsplit("/", 1)[-1]
        return name != "conftest.py" and not any(fnmatch.fnmatch(name, p) for p in self.test_patterns)

    def compile(self, path: str, rel: str, source: bytes) -> Any:
        key = hashlib.blake2b(source + f"\0{rel}\0{VERSION}\0{sys.version}".encode(), digest_size=16).hexdigest()
        cached = os.path.join(self.cache_dir, key + ".bin") if self.cache_dir else None
        if cached and os.path.exists(cached):
            try:
                with open(cached, "rb") as fh:
                    code, fps = marshal.load(fh)
                self.units[rel] = fps
                return code
            except (OSError, EOFError, ValueError, TypeError):
                pass
        tree = ast.parse(source, path)
        fps = fingerprints(tree)
        code = compile(instrument(tree, rel), path, "exec", dont_inherit=True)
        self.units[rel] = fps
        if cached:
            try:
                os.makedirs(self.cache_dir or "", exist_ok=True)
                tmp = f"{cached}.{os.getpid()}"
                with open(tmp, "wb") as fh:
                    marshal.dump((code, fps), fh)
                os.replace(tmp, cached)
            except OSError:
                pass
        return code

    # -- hooks -------------------------------------------------------------------------------------
    def install(self) -> None:
        sys.meta_path.insert(_after_pytest(sys.meta_path), _Finder(self))
        sys.addaudithook(_audit_hook(self))

    def start_test(self) -> None:
        self.flush_session()
        self.context = {"opened": set(), "listed": set(), "spawned": set(), "connected": set()}

    def take(self) -> set[str]:
        keys = set(self.hits)
        self.hits.clear()
        return keys

    def flush_session(self) -> None:
        self.session["units"].update(self.take())

    def end_test(self) -> dict[str, set[str]]:
        context = self.context or {"opened": set(), "listed": set(), "spawned": set(), "connected": set()}
        context["units"] = self.take()
        self.context = None
        return context

    def imported(self) -> tuple[list[str], list[str]]:
        """(instrumented, imported but not instrumented) repository modules, as relative paths."""
        seen = set()
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py"):
                rel = self.rel(path)
                if rel is not None and self.instrumentable(rel):
                    seen.add(rel)
        return sorted(seen & set(self.units)), sorted(seen - set(self.units))


def _after_pytest(meta_path: list[Any]) -> int:
    # pytest's assertion rewriter must keep first pick (it owns test modules and conftests).
    for i, finder in enumerate(meta_path):
        if type(finder).__name__ == "AssertionRewritingHook":
            return i + 1
    return 0


class _Loader(SourceFileLoader):
    def __init__(self, fullname: str, path: str, recorder: Recorder, rel: str) -> None:
        super().__init__(fullname, path)
        self.recorder, self.rel = recorder, rel

    def get_code(self, fullname: str) -> Any:
        return self.recorder.compile(self.path, self.rel, self.get_data(self.path))


class _Finder:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        spec = PathFinder.find_spec(fullname, path, target)
        origin = getattr(spec, "origin", None)
        if spec is None or not isinstance(origin, str) or not origin.endswith(".py"):
            return spec
        rel = self.recorder.rel(origin)
        if rel is None or not self.recorder.instrumentable(rel) or not isinstance(spec.loader, SourceFileLoader):
            return spec
        spec.loader = _Loader(fullname, origin, self.recorder, rel)
        return spec

    def invalidate_caches(self) -> None:
        PathFinder.invalidate_caches()


_SPAWN = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
_SKIP_SUFFIXES = (".py", ".pyc", ".pyi")


def _audit_hook(rec: Recorder) -> Any:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" or event == "os.listdir" or event == "os.scandir":
            path = args[0] if args else None
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str) or (event == "open" and path.endswith(_SKIP_SUFFIXES)):
                return
            if event == "open" and args[1] is not None and any(c in str(args[1]) for c in "wax+"):
                return  # written, not read
            rel = rec.rel(os.path.abspath(path or "."))
            if rel is not None:
                (rec.context or rec.session)["opened" if event == "open" else "listed"].add(rel)
        elif event == "socket.connect":
            address = args[1] if len(args) > 1 else None
            host = address[0] if isinstance(address, tuple) and address else str(address)
            (rec.context or rec.session)["connected"].add(str(host))
        elif event in _SPAWN:
            what = args[0] if args else ""
            name = os.path.basename(os.fsdecode(what)) if isinstance(what, str | bytes) else type(what).__name__
            (rec.context or rec.session)["spawned"].add(name or event)
    return hook
