"""The static import graph of a repository's Python files.

Module names are found the way Python would find them at test time: every app folder, its ``src/``,
its pytest ``pythonpath`` entries, the folders pytest inserts for test files (the first folder upwards
without ``__init__.py``) and the repository root are import roots. A name is looked up in the importing
file's own app first, then anywhere in the repository; when several files match, all are linked
(over-linking widens a selection, it never narrows it). Folders without ``__init__.py`` work as
namespace packages because names come from paths, not from ``__init__`` files.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from testpilot.selection.discovery import AppSpec
from testpilot.selection.imports import ParsedImports


@dataclass
class ImportGraph:
    deps: dict[str, list[str]]  # file -> files it imports (plus its __init__s and conftests)
    rdeps: dict[str, list[str]]  # file -> files importing it
    missing: dict[str, set[str]]  # file -> module names it imports that no file provides
    dynamic: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # file -> module names it is known by
    resolved: dict = field(default_factory=dict)  # what the next build may reuse (see build_graph)
    resolved_count: int = 0  # files whose edges were worked out afresh in this build

    def reaching(self, sources: dict[str, str]) -> dict[str, tuple[int, list[str]]]:
        """Every file that reaches a source by imports: file -> (distance, chain to the source).

        ``sources`` maps a changed file to its label in chains (e.g. ``shop/pricing.py (changed)``).
        """
        found: dict[str, tuple[int, list[str]]] = {}
        queue: deque[str] = deque()
        for path, label in sources.items():
            if path not in found:
                found[path] = (0, [label])
                queue.append(path)
        rdeps = self.rdeps
        while queue:
            node = queue.popleft()
            dist, chain = found[node]
            for importer in rdeps.get(node, ()):
                if importer not in found:
                    found[importer] = (dist + 1, [importer, *chain] if dist else [importer, chain[0]])
                    queue.append(importer)
        return found

    def chains_from(self, start: str, targets: set[str]) -> dict[str, list[str]]:
        """Shortest import chain from ``start`` to each target it reaches (for explanations)."""
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        out: dict[str, list[str]] = {}
        while queue:
            node = queue.popleft()
            if node in targets:
                chain: list[str] = []
                cur: str | None = node
                while cur is not None:
                    chain.append(cur)
                    cur = parent[cur]
                out[node] = chain[::-1]
            for dep in self.deps.get(node, ()):
                if dep not in parent:
                    parent[dep] = node
                    queue.append(dep)
        return out


def _module_name(rel: str) -> str | None:
    stem = rel[:-3]
    if stem.endswith("/__init__"):
        stem = stem[:-9]
    elif stem == "__init__":
        return None
    parts = stem.split("/")
    if not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _file_roots(app: AppSpec, test_like: Iterable[str], inits: set[str]) -> set[str]:
    """Import roots of one app (repo-relative folders, '' for the repository root)."""
    def join(*parts: str) -> str:
        return "/".join(p.strip("/") for p in parts if p.strip("/") not in ("", "."))

    roots = {app.dir, join(app.dir, "src")} | {join(app.dir, p) for p in app.pytest.pythonpath}
    for path in test_like:
        if app.rel(path) is None:
            continue
        folder = path.rpartition("/")[0]
        while folder and f"{folder}/__init__.py" in inits:  # pytest's rootdir-less "prepend" insertion
            folder = folder.rpartition("/")[0]
        roots.add(folder)
    return roots


def fingerprint(paths: Iterable[str], apps: list[AppSpec]) -> str:
    """Identifies the set of files and the apps' settings: everything edges depend on besides content."""
    digest = hashlib.sha1(usedforsecurity=False)
    for app in apps:
        digest.update(repr((app.name, app.dir, app.test_paths, app.pytest.python_files, app.pytest.pythonpath,
                            app.pytest.norecursedirs)).encode())
    digest.update("\0".join(sorted(paths)).encode())
    return digest.hexdigest()


class _Index:
    """Module name -> files, per app and repository-wide; depends only on the set of paths."""

    def __init__(self, paths: list[str], apps: list[AppSpec], test_files: set[str]) -> None:
        inits = {p for p in paths if p.endswith("__init__.py")}
        app_of: dict[str, int] = {}
        for i, app in enumerate(apps):
            prefix = app.dir + "/" if app.dir else ""
            for path in paths:
                if path.startswith(prefix) and (path not in app_of or len(apps[app_of[path]].dir) < len(app.dir)):
                    app_of[path] = i
        test_like = test_files | {p for p in paths if p.endswith("conftest.py")}
        app_roots = [_file_roots(app, test_like, inits) for app in apps]
        self.app_of = app_of
        self.global_index: dict[str, list[str]] = {}
        self.app_index: list[dict[str, list[str]]] = [{} for _ in apps]
        self.names: dict[str, list[str]] = {}
        all_roots = set().union(*app_roots) | {""}
        for path in paths:
            folder = path
            own = app_of.get(path)
            while True:
                folder = folder.rpartition("/")[0] if "/" in folder else ""
                if folder in all_roots:
                    name = _module_name(path[len(folder) + 1:] if folder else path)
                    if name:
                        self.global_index.setdefault(name, []).append(path)
                        self.names.setdefault(path, []).append(name)
                        if own is not None and folder in app_roots[own]:
                            self.app_index[own].setdefault(name, []).append(path)
                if not folder:
                    break

    def dump(self) -> tuple:
        return (self.app_of, self.global_index, self.app_index, self.names)

    @classmethod
    def load(cls, data: tuple) -> _Index:
        index = cls.__new__(cls)
        index.app_of, index.global_index, index.app_index, index.names = data
        return index


def _resolve(path: str, info: ParsedImports, index: _Index, files: dict[str, ParsedImports] | set[str],
             is_test: bool) -> tuple[list[str], set[str]]:
    """(files ``path`` imports, module names nothing provides)."""
    own = index.app_of.get(path)
    global_index = index.global_index
    local = index.app_index[own] if own is not None else global_index
    found: set[str] = set()
    missing: set[str] = set()
    folder = path.rpartition("/")[0]
    for level, module, imported in info.imports:
        if level:
            base = folder
            for _ in range(level - 1):
                base = base.rpartition("/")[0]
            parts = module.split(".") if module else []
            for i in range(len(parts) + 1):
                sub = "/".join([base, *parts[:i]]) if base else "/".join(parts[:i])
                for cand in (f"{sub}.py", f"{sub}/__init__.py" if sub else "__init__.py"):
                    if cand in files:
                        found.add(cand)
            for name in imported:
                sub = "/".join(p for p in [base, *parts, name] if p)
                for cand in (f"{sub}.py", f"{sub}/__init__.py"):
                    if cand in files:
                        found.add(cand)
            continue
        # ``import a.b.c`` runs a, a.b and a.b.c; ``from a.b import c`` also a.b.c if c is a module.
        wanted = [module]
        dot = module.find(".")
        while dot != -1:
            wanted.append(module[:dot])
            dot = module.find(".", dot + 1)
        wanted.extend(f"{module}.{name}" for name in imported if name != "*")
        for i, name in enumerate(wanted):
            hit = local.get(name) or global_index.get(name)
            if hit:
                found.update(hit)
            elif i == 0:
                missing.add(name)
    # Importing a module runs its packages' __init__ files; pytest imports conftests above a test.
    up = folder
    while up and f"{up}/__init__.py" in files:
        found.add(f"{up}/__init__.py")
        up = up.rpartition("/")[0]
    if is_test:
        up = folder
        while True:
            conftest = f"{up}/conftest.py" if up else "conftest.py"
            if conftest in files:
                found.add(conftest)
            if not up:
                break
            up = up.rpartition("/")[0]
    found.discard(path)
    return sorted(found), missing


def build_graph(parsed: dict[str, ParsedImports], apps: list[AppSpec], test_files: set[str], *,
                shas: dict[str, str] | None = None, previous: dict | None = None,
                key: str | None = None) -> ImportGraph:
    """Link every file in ``parsed`` (repo-relative .py paths) to the files it imports.

    ``previous`` is the ``resolved`` dict of an earlier graph: when the set of files and apps is the
    same, files whose blob sha did not change keep their edges and only the others are resolved.
    """
    shas = shas or {}
    key = key or fingerprint(parsed, apps)
    prev = previous if previous and previous.get("fingerprint") == key else None
    index = _Index.load(prev["index"]) if prev else _Index(list(parsed), apps, test_files)
    old_shas: dict[str, str] = prev["shas"] if prev else {}
    old_deps: dict[str, list[str]] = prev["deps"] if prev else {}
    old_missing: dict[str, set[str]] = prev["missing"] if prev else {}
    unrooted: dict[str, list[str]] = prev["unrooted"] if prev else {}
    deps: dict[str, list[str]] = {}
    missing: dict[str, set[str]] = {}
    dynamic = set()
    errors = {}
    suffixes: dict[str, list[str]] | None = None
    resolved_now = 0
    for path, info in parsed.items():
        if info.dynamic:
            dynamic.add(path)
        if info.error:
            errors[path] = info.error
        sha = shas.get(path)
        if sha is not None and old_shas.get(path) == sha and path in old_deps:
            deps[path] = old_deps[path]
            if path in old_missing:
                missing[path] = old_missing[path]
            continue
        resolved_now += 1
        found, lost = _resolve(path, info, index, parsed, path in test_files)
        if lost:
            missing[path] = lost
            extra = set()
            for name in lost:
                if name not in unrooted:
                    suffixes = suffixes if suffixes is not None else _suffix_index(parsed)
                    unrooted[name] = suffixes.get(name, [])
                extra.update(unrooted[name])
            extra.discard(path)
            if extra:
                found = sorted(set(found) | extra)
        deps[path] = found
    rdeps: dict[str, list[str]] = {}
    for path, targets in deps.items():
        for target in targets:
            rdeps.setdefault(target, []).append(path)
    graph = ImportGraph(deps, rdeps, missing, dynamic, errors, index.names)
    graph.resolved = {"fingerprint": key, "shas": {p: shas[p] for p in parsed if p in shas},
                      "deps": deps, "missing": missing, "unrooted": unrooted, "index": index.dump()}
    graph.resolved_count = resolved_now
    return graph


def _suffix_index(parsed: dict[str, ParsedImports]) -> dict[str, list[str]]:
    """Dotted path tails -> files, for imports no root resolves: such a folder may be on PYTHONPATH or
    pip-installed at test time. Standard-library and third-party names usually match no file."""
    suffixes: dict[str, list[str]] = {}
    for path in parsed:
        stem = path[:-3].removesuffix("/__init__").split("/")
        parts: list[str] = []
        for part in reversed(stem):  # the longest importable tail of the path
            if not part.isidentifier() or part == "__init__":
                break
            parts.insert(0, part)
        for i in range(len(parts)):
            suffixes.setdefault(".".join(parts[i:]), []).append(path)
    return suffixes
