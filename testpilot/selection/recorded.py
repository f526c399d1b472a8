"""Selection from per-test records (``record.py``): the tests that really ran what changed.

For each changed file of an app that has a record (changes from the recorded commit to ``head``, the
files that were dirty when recording, and the ``base...head`` change):

* a function whose fingerprint changed (or that was deleted) selects the tests that ran it; one that
  ran outside any test (import time, collection, a wider-scoped fixture's set-up) selects the session;
* a module-level change (constants, class bodies, signatures, decorators, imports) selects the tests
  whose session imported the module; a changed ``NAME = value`` whose name only functions read selects
  the tests that ran those functions;
* a module that was imported but could not be instrumented selects its session's tests;
* a changed data file selects the tests that opened it, or listed its folder;
* tests that started a subprocess (recording cannot follow it) are selected for any change;
* a test file with no recorded test selects itself.

Test files, conftests and dependency/config files are left to the other strategies (static graph,
rules, unanalysable). Files the record handles are skipped by the import-graph, name-match and
dynamic-import strategies: the record shows what each test loaded.
"""

from __future__ import annotations

import ast
import difflib
from typing import TYPE_CHECKING

from testpilot.recorder import MODULE, fingerprints
from testpilot.results import Reason
from testpilot.selection import git
from testpilot.selection.record import Record

if TYPE_CHECKING:
    from testpilot.selection.discovery import AppSpec
    from testpilot.selection.engine import Evidence, Workspace

STRATEGY = "recorded"
# Read by pytest or packaging before any test runs: left to the unanalysable rule (whole suite).
CONFIG_NAMES = ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", ".pytest.ini", "MANIFEST.in",
                "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", ".python-version", "noxfile.py")


def _config_like(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in CONFIG_NAMES or (name.startswith("requirements") and name.endswith((".txt", ".in")))


class _Finder:
    """Which tests of one part used which keys (functions, files), built lazily."""

    def __init__(self, record: Record, index: int, tests: set[str]) -> None:
        part = record.parts[index]
        self.part = part
        self.nodes = [n for n in part.tests if record.owner.get(n) == index and n.split("::")[0] in tests]
        self.key_id = {k: i for i, k in enumerate(part.keys)}

    def users(self, key: str, kind: str) -> tuple[list[str], bool]:
        """(tests that used ``key``, whether the session used it outside tests)."""
        i = self.key_id.get(key)
        if i is None:
            return [], False
        return ([n for n in self.nodes if i in self.part.tests[n].get(kind, ())],
                i in self.part.session.get(kind, ()))


def record_evidence(ev: Evidence, ws: Workspace, app: AppSpec, record: Record, notes: list[str]) -> set[str]:
    """Add ``recorded`` evidence for ``app``; returns the changed paths the record answered for."""
    from testpilot.selection.engine import _is_test_path, owner

    tests = set(ws.tests[app.name])
    handled: set[str] = set()
    base_changes = {p for c in ws.changes for p in (c.path, c.old_path) if p}
    head_cache: dict[str, dict[str, str] | None] = {}
    finders: dict[int, _Finder] = {}

    def finder_of(index: int) -> _Finder:
        if index not in finders:
            finders[index] = _Finder(record, index, tests)
        return finders[index]
    for commit in dict.fromkeys(p.commit for p in record.parts):
        indexes = [i for i, p in enumerate(record.parts) if p.commit == commit]
        try:
            since = git._diff(ws.root, commit, ws.head)
        except Exception:  # noqa: BLE001 - a commit the checkout does not have: use the other evidence
            notes.append(f"record of {app.name} at {commit[:12]} is not in this repository; not used")
            continue
        paths = {p for c in since for p in (c.path, c.old_path) if p} | base_changes
        for index in indexes:
            paths |= set(record.parts[index].dirty)
        for path in sorted(paths):
            if _is_test_path(ws, path) or _config_like(path):
                continue
            known = any(path in record.parts[i].units or path in record.parts[i].uninstrumented for i in indexes)
            if not known and owner(ws.apps, path) is not app:
                continue
            any_used = False
            for index in indexes:
                finder = finder_of(index)
                if path.endswith(".py"):
                    any_used |= _python_change(ev, ws, app, finder, commit, path, head_cache)
                else:
                    any_used |= _data_change(ev, app, finder, path)
                if not path.endswith(".py") or not known:  # imports list package folders all the time
                    any_used |= _listed(ev, app, finder, path)
            handled.add(path)
            if any_used or path not in base_changes:
                continue
            notes.append(f"{path}: no recorded test of {app.name} used it")
        if handled:
            for index in indexes:
                finder = finder_of(index)
                users = [n for n in finder.nodes if finder.part.tests[n].get("spawned")]
                for node in users:
                    what = ", ".join(finder.part.keys[i] for i in finder.part.tests[node]["spawned"])
                    ev.add(app.name, node, Reason(strategy=STRATEGY, changed_file="", rule_id="subprocess",
                                                  text=f"started a subprocess ({what}); recording does not follow it"))
    if handled:
        recorded_files = {n.split("::")[0] for n in record.owner}
        for test in sorted(tests - recorded_files):
            ev.add(app.name, test, Reason(strategy=STRATEGY, rule_id="no-record",
                                          text=f"no record for {test} yet (record at {record.commit[:12]})"))
    return handled


def _whole_session(ev: Evidence, app: AppSpec, finder: _Finder, path: str, text: str) -> bool:
    for node in finder.nodes:
        ev.add(app.name, node, Reason(strategy=STRATEGY, changed_file=path, text=text))
    return bool(finder.nodes)


def _select(ev: Evidence, app: AppSpec, finder: _Finder, path: str, key: str, kind: str, text: str,
            session_text: str) -> bool:
    users, in_session = finder.users(key, kind)
    if in_session:
        return _whole_session(ev, app, finder, path, session_text)
    for node in users:
        ev.add(app.name, node, Reason(strategy=STRATEGY, changed_file=path, text=text))
    return bool(users)


def _python_change(ev: Evidence, ws: Workspace, app: AppSpec, finder: _Finder, commit: str, path: str,
                   head_cache: dict[str, dict[str, str] | None]) -> bool:
    part = finder.part
    if path in part.uninstrumented:
        return _whole_session(ev, app, finder, path, f"{path} changed; the session imported it without "
                                                     "recording its functions")
    old = part.units.get(path)
    if old is None:
        return False  # the session never imported it: no test of it ran its code
    if path not in head_cache:
        source = git.read_file(ws.root, ws.head, path)
        head_cache[path] = fingerprints_of(source)
    new = head_cache[path]
    if new is None:
        return _whole_session(ev, app, finder, path, f"{path} changed and was imported by the session "
                                                     "(deleted, or it does not parse now)")
    olds = [old]
    if ws.base and ws.base != commit:
        base_fps = fingerprints_of(git.read_file(ws.root, ws.base, path))
        if base_fps is not None:
            olds.append(base_fps)
    used = False
    if any(o.get(MODULE) != new.get(MODULE) for o in olds):
        names = None if path in part.dirty else _changed_constants(ws, commit, path)
        if names is None:
            return _whole_session(ev, app, finder, path, f"module-level change in {path}; the session imported it")
        used |= _constant_users(ev, ws, app, finder, path, names)
    for qual in sorted(set(new) | {q for o in olds for q in o}):
        if qual == MODULE or all(o.get(qual) == new.get(qual) for o in olds) or qual not in old:
            continue
        key = f"{path}::{qual}"
        what = "deleted" if qual not in new else "changed"
        used |= _select(ev, app, finder, path, key, "units", f"ran {key} ({what})",
                        f"{key} ({what}) ran outside any test (import, collection or a shared fixture)")
    return used


def fingerprints_of(source: bytes | None) -> dict[str, str] | None:
    if source is None:
        return None
    try:
        return fingerprints(ast.parse(source))
    except (SyntaxError, ValueError):
        return None


def _statements(tree: ast.Module) -> list[tuple[str, ast.stmt]]:
    """Module and top-level class statements, each dumped with function bodies left out."""
    out: list[tuple[str, ast.stmt]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            saved = stmt.body
            stmt.body = []
            out.append((ast.dump(stmt), stmt))
            stmt.body = saved
            out += [(ast.dump(_stub(s)), s) for s in saved]
        else:
            out.append((ast.dump(_stub(stmt)), stmt))
    return out


def _stub(stmt: ast.stmt) -> ast.stmt:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return ast.FunctionDef(name=stmt.name, args=stmt.args, body=[], decorator_list=stmt.decorator_list,
                               returns=stmt.returns, type_comment=None)
    return stmt


def _assigned(stmt: ast.stmt) -> set[str] | None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
        stmt, ast.AnnAssign) and stmt.value is not None else None
    if not targets or not all(isinstance(t, ast.Name) for t in targets):
        return None
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _changed_constants(ws: Workspace, commit: str, path: str) -> set[str] | None:
    """Names of ``NAME = value`` statements that are the only module-level difference, else None."""
    old_src, new_src = git.read_file(ws.root, commit, path), git.read_file(ws.root, ws.head, path)
    try:
        old, new = _statements(ast.parse(old_src or b"")), _statements(ast.parse(new_src or b""))
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    matcher = difflib.SequenceMatcher(a=[d for d, _ in old], b=[d for d, _ in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag != "replace" or i2 - i1 != j2 - j1:
            return None
        for (_, a), (_, b) in zip(old[i1:i2], new[j1:j2], strict=True):
            before, after = _assigned(a), _assigned(b)
            if before is None or before != after:
                return None
            names |= before
    return names


def _constant_users(ev: Evidence, ws: Workspace, app: AppSpec, finder: _Finder, path: str,
                    names: set[str]) -> bool:
    """Tests that ran a function reading one of ``names``; the session if anything reads them outside
    a function, or by string."""
    from testpilot.recorder import function_units

    used = False
    hits = git.grep_files(ws.root, ws.head, sorted(names))
    for hit in hits:
        if not hit.endswith(".py"):
            continue
        source = git.read_file(ws.root, ws.head, hit)
        try:
            tree = ast.parse(source or b"")
        except (SyntaxError, ValueError):
            return _whole_session(ev, app, finder, path, f"{path}: {hit} reads a changed constant")
        inside: set[int] = set()
        for qual, node in function_units(tree):
            refs = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
                n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            found = refs & names
            for sub in ast.walk(node):
                inside.add(id(sub))
            if found:
                key = f"{hit}::{qual}"
                used |= _select(ev, app, finder, path, key, "units",
                                f"ran {key}, which reads {', '.join(sorted(found))} (changed in {path})",
                                f"{key} reads {', '.join(sorted(found))} (changed in {path}) outside any test")
        outside = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in inside} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and id(n) not in inside} | {
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        own = 1 if hit == path else 0  # the assignment itself
        if hit != path and outside & names or (hit == path and _counts(tree, names, inside) > own):
            return _whole_session(ev, app, finder, path, f"module-level change in {path}: "
                                                         f"{hit} uses {', '.join(sorted(names))} at import time")
    return used


def _counts(tree: ast.Module, names: set[str], inside: set[int]) -> int:
    return max((sum(1 for n in ast.walk(tree) if id(n) not in inside and (
        (isinstance(n, ast.Name) and n.id == name) or (isinstance(n, ast.Attribute) and n.attr == name)
        )) for name in names), default=0)


def _data_change(ev: Evidence, app: AppSpec, finder: _Finder, path: str) -> bool:
    return _select(ev, app, finder, path, path, "opened", f"opened {path} (changed)",
                   f"{path} (changed) was opened outside any test (import or collection)")


def _listed(ev: Evidence, app: AppSpec, finder: _Finder, path: str) -> bool:
    # Outside tests, pytest's collection and the import system list every folder: only a test's own
    # listing (a loader scanning a folder) says it may see a new or changed file there.
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    users, _ = finder.users(folder, "listed")
    for node in users:
        ev.add(app.name, node, Reason(strategy=STRATEGY, changed_file=path,
                                      text=f"listed {folder or '.'}/, where {path} changed"))
    return bool(users)



def runtime_links(record: Record) -> tuple[set[str], dict[str, str]]:
    """(recorded test files, test file -> how one of its tests could reach another app at run time: a
    network connection or a subprocess)."""
    out: dict[str, str] = {}
    for node, index in record.owner.items():
        part = record.parts[index]
        deps = part.tests[node]
        for kind, verb in (("connected", "connected to"), ("spawned", "started")):
            if deps.get(kind) and node.split("::")[0] not in out:
                out[node.split("::")[0]] = f"{node} {verb} {part.keys[deps[kind][0]]} at run time"
    return {n.split("::")[0] for n in record.owner}, out
