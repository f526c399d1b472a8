"""Change-based selection: from a git diff to the tests that can see it, each with its evidence.

Strategies (all applied, evidence recorded per test): changed test files, the import graph (with
conftest scope, package ``__init__`` files and deleted modules), tests named after a changed module,
mapping rules, unanalysable files (a rule, or the owning app's whole suite), dynamic imports, the
coverage map, ``always_run``, and apps that depend on a changed app. ``never_run`` removes tests last.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from testpilot.errors import ConfigError
from testpilot.results import Reason, Selection
from testpilot.selection import git
from testpilot.selection.cache import ImportCache
from testpilot.selection.discovery import AppSpec, app_specs
from testpilot.selection.graph import ImportGraph, build_graph, fingerprint
from testpilot.selection.history import History
from testpilot.selection.imports import ParsedImports
from testpilot.selection.modes import parse_budget
from testpilot.selection.ranking import rank
from testpilot.selection.record import Record, load_local
from testpilot.selection.recorded import record_evidence, runtime_links
from testpilot.selection.rules import mapping_hits, match_tests, unanalysable_rule
from testpilot.selection.strategies import Covered, coverage_evidence, cross_app_evidence

if TYPE_CHECKING:
    from testpilot.selection.coverage_map import CoverageMap
    from testpilot.suite import Suite

WORKTREE_LABEL = "WORKTREE"
Dependents = Callable[[str], Iterable[str]]


@dataclass
class Workspace:
    """Everything one selection computed, kept for explanations."""

    root: Path
    apps: list[AppSpec]
    base: str | None
    head: str | None
    changes: list[git.FileChange]
    graph: ImportGraph
    tests: dict[str, list[str]]  # app -> test files relative to the app
    ghosts: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)  # changed .py path -> chain label
    parsed_count: int = 0
    suite_mode: bool = False
    test_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # repo path -> (app, test file)


class Evidence:
    """(app, test id) -> reasons, deduplicated by strategy and changed file."""

    def __init__(self) -> None:
        self.reasons: dict[tuple[str, str], list[Reason]] = {}

    def add(self, app: str, test_id: str, reason: Reason) -> None:
        found = self.reasons.setdefault((app, test_id), [])
        if not any(r.strategy == reason.strategy and r.changed_file == reason.changed_file
                   and r.rule_id == reason.rule_id for r in found):
            found.append(reason)


def owner(apps: list[AppSpec], path: str) -> AppSpec | None:
    """The innermost app whose folder holds ``path``."""
    best = None
    for app in apps:
        if app.rel(path) is not None and (best is None or len(app.dir) > len(best.dir)):
            best = app
    return best


def build_workspace(repo: Path, base: str | None, head: str | None, suite: Suite | None,
                    cache_dir: Path | None) -> Workspace:
    """Resolve refs, diff, discover apps and tests, and build the import graph at ``head``."""
    root = git.repo_root(repo)
    base_sha, head_sha = git.resolve_ref(root, base), git.resolve_ref(root, head)
    changes = git.changed_files(root, base_sha, head_sha)
    blobs = git.blob_hashes(root, head_sha)

    def read_path(path: str) -> bytes | None:
        return git.read_file(root, head_sha, path) if path in blobs else None

    project = suite.root if suite is not None else repo.resolve()
    try:
        apps = app_specs(root, project, suite, read_path)
    except ValueError:
        raise ConfigError(f"{project} is not inside the git repository {root}", field="apps",
                          hint="keep the suite and its apps inside one git checkout") from None
    py = {p: sha for p, sha in blobs.items() if p.endswith(".py")}

    def read_shas(shas: list[str]) -> dict[str, bytes]:
        if head_sha is not None:
            return git.read_blobs(root, shas)
        wanted = set(shas)
        return {sha: (root / p).read_bytes() for p, sha in py.items() if sha in wanted}

    cache = ImportCache(cache_dir)
    parsed: dict[str, ParsedImports] = cache.get_many(py, read_shas)
    cache.save()
    previous = cache.load_graph()
    ghosts = set()
    for change in changes:
        gone = change.old_path if change.status == "R" else change.path if change.status == "D" else ""
        if gone.endswith(".py") and gone not in parsed:
            ghosts.add(gone)
            parsed[gone] = ParsedImports((), False, "")
    key = fingerprint(parsed, apps)
    test_of: dict[str, tuple[str, str]]
    if previous and previous.get("fingerprint") == key and "test_of" in previous:
        test_of = previous["test_of"]  # which files are tests depends only on paths and settings
    else:
        test_of = {}
        for path in sorted(py):
            app = owner(apps, path)
            rel = app.rel(path) if app else None
            if app and rel is not None and app.is_test_file(rel):
                test_of[path] = (app.name, rel)
    tests: dict[str, list[str]] = {app.name: [] for app in apps}
    for app_name, rel in test_of.values():
        tests[app_name].append(rel)
    graph = build_graph(parsed, apps, set(test_of), shas=py, previous=previous, key=key)
    graph.resolved["test_of"] = test_of
    cache.save_graph(graph.resolved, changed=graph.resolved_count > 0)
    return Workspace(root, apps, base_sha, head_sha, changes, graph, tests, ghosts,
                     parsed_count=cache.parsed_count, suite_mode=suite is not None, test_of=test_of)


def collect_evidence(ws: Workspace, *, coverage: list[CoverageMap], dependents: Dependents | None,
                     suite: Suite | None, notes: list[str], records: dict[str, Record] | None = None,
                     ) -> tuple[Evidence, list[str], dict[str, str]]:
    """Apply every strategy; returns evidence, unanalysable files and affected scenarios."""
    ev = Evidence()
    handled: set[str] = set()  # changed paths a per-test record answered for
    for spec in ws.apps:
        if records and spec.name in records:
            handled |= record_evidence(ev, ws, spec, records[spec.name], notes)
    unanalysable: list[str] = []
    test_set = {app.name: set(files) for app, files in zip(ws.apps, ws.tests.values(), strict=True)}
    changed_apps: dict[str, str] = {}  # app -> first changed non-test file in it
    name_hits: list[tuple[str, str, str]] = []  # (app, test, changed module) by naming convention
    by_basename: dict[tuple[str, str], list[str]] = {}
    for app_name, files in ws.tests.items():
        for test in files:
            by_basename.setdefault((app_name, test.rsplit("/", 1)[-1]), []).append(test)

    def whole_suite(app: AppSpec, reason: Reason) -> None:
        for test in ws.tests[app.name]:
            ev.add(app.name, test, reason)

    for change in ws.changes:
        path = change.path
        app = owner(ws.apps, path)
        rel = app.rel(path) if app else None
        is_py = path.endswith(".py")
        is_test = bool(app and rel is not None and app.is_test_file(rel))
        if app and rel is not None and not is_test and not rel.rsplit("/", 1)[-1] == "conftest.py":
            changed_apps.setdefault(app.name, path)
        if is_py:
            if change.status in ("D", "R"):
                gone = change.old_path or path
                ws.sources[gone] = f"{gone} ({'renamed to ' + path if change.status == 'R' else 'deleted'})"
            if change.status != "D":
                ws.sources[path] = f"{path} ({'added' if change.status == 'A' else 'changed'})"
                if is_test and app and rel is not None:
                    what = {"A": "new test file", "R": f"test file renamed from {change.old_path}"}
                    ev.add(app.name, rel, Reason(strategy="changed_test", changed_file=path,
                                                 text=f"{what.get(change.status, 'test file changed')}: {rel}"))
                elif app and rel is not None:
                    stem = rel.rsplit("/", 1)[-1][:-3]
                    if stem != "__init__" and stem != "conftest":
                        names = {f"test_{stem}.py", f"{stem}_test.py"}
                        name_hits += [(app.name, test, path) for name in names
                                      for test in by_basename.get((app.name, name), ())]
        if app and rel is not None:
            for hit in mapping_hits(app.config, app.name, rel, ws.tests[app.name]):
                for test in hit.tests:
                    ev.add(app.name, test, Reason(strategy="mapping_rule", rule_id=hit.rule_id, changed_file=path,
                                                  text=f"rule {hit.rule_id}: {rel} changed"))
        error = ws.graph.errors.get(path)
        if is_py and change.status != "D" and error:
            notes.append(f"could not parse {path} ({error}); the files importing it are selected")
        if path in handled:
            continue
        if is_py:
            if path in ws.graph.dynamic and _unanalysable(ev, ws, app, rel, path, whole_suite, notes,
                                                          why="imports by computed name"):
                unanalysable.append(path)
        elif not (app and rel is not None and mapping_hits(app.config, app.name, rel, ws.tests[app.name])):
            if _unanalysable(ev, ws, app, rel, path, whole_suite, notes):
                unanalysable.append(path)

    for path in handled:
        ws.sources.pop(path, None)  # the record shows which tests ran it: no import chains, no name match
    covered = _graph_evidence(ev, ws, coverage, test_set, notes)
    for path in _unreached(ws, covered):
        # No test imports it, so it is loaded by name (plugins, settings strings), run as a script,
        # or found by a framework scanning folders. Files naming it say who uses it; with none, it is
        # a file we cannot analyse. A mapping rule or an unanalysable rule narrows it.
        app = owner(ws.apps, path)
        rel = app.rel(path) if app else None
        if app and rel is not None and mapping_hits(app.config, app.name, rel, ws.tests[app.name]):
            continue
        if not _by_reference(ev, ws, path, whole_suite, notes, unanalysable) and _unanalysable(
                ev, ws, app, rel, path, whole_suite, notes, why="no test imports it and no file names it"):
            unanalysable.append(path)
    for app_name, test, path in name_hits:
        if path in handled:
            continue
        if app_name not in covered.get(path, {}) or test in covered[path][app_name]:  # coverage knows better
            ev.add(app_name, test, Reason(strategy="name_match", changed_file=path,
                                          text=f"named after changed module {path}"))
    if ws.graph.dynamic and any(not _is_test_path(ws, p) for p in ws.sources):
        _dynamic_evidence(ev, ws)
    for app in ws.apps:
        if app.config.strategy == "all":
            whole_suite(app, Reason(strategy="always_run", rule_id="strategy: all",
                                    text=f"selection.{app.name}.strategy is 'all'"))
        for pattern in app.config.always_run:
            for test in match_tests([pattern], ws.tests[app.name]):
                ev.add(app.name, test, Reason(strategy="always_run", rule_id=pattern,
                                              text=f"always_run: {pattern}"))
    links = {name: runtime_links(rec) for name, rec in (records or {}).items()}
    scenarios = cross_app_evidence(ev, ws.apps, ws.tests, changed_apps, dependents, suite, links)
    return ev, unanalysable, scenarios


_DOCS = (".md", ".rst", ".txt", ".html", ".adoc")


def _by_reference(ev: Evidence, ws: Workspace, path: str, whole_suite: Callable[[AppSpec, Reason], None],
                  notes: list[str], unanalysable: list[str]) -> bool:
    """Select through the files that name ``path`` (dotted module name or file path); False if none."""
    needles = [n for n in ws.graph.names.get(path, []) if "." in n] + [path]
    app = owner(ws.apps, path)
    if app and app.rel(path) and app.dir:
        needles.append(app.rel(path) or "")
    refs = [f for f in git.grep_files(ws.root, ws.head, needles) if f != path and not f.endswith(_DOCS)]
    label = ws.sources[path]
    found = False
    for ref in refs:
        if ref in ws.test_of:
            test_app, test_rel = ws.test_of[ref]
            ev.add(test_app, test_rel, Reason(strategy="string_reference", changed_file=path, chain=[ref, label],
                                            text=f"{ref} names {label}"))
            found = True
        elif ref.endswith(".py"):
            added = _add_chains(ev, ws, ws.graph.reaching({ref: f"{ref} (names {label})"}), keep=None,
                                strategy="string_reference")
            found = found or added > 0
        else:
            ref_app = owner(ws.apps, ref)
            ref_rel = ref_app.rel(ref) if ref_app else None
            if _unanalysable(ev, ws, ref_app, ref_rel, path, whole_suite, notes, why=f"named in {ref}"):
                unanalysable.append(path)
                found = True
    return found


def _unreached(ws: Workspace, covered: Covered) -> list[str]:
    """Changed (or deleted) Python source files from which no import chain leads to a test."""
    out = []
    for path in ws.sources:
        if path in covered or _is_test_path(ws, path):
            continue
        seen, queue = {path}, [path]
        found = False
        while queue and not found:
            for importer in ws.graph.rdeps.get(queue.pop(), ()):
                if importer in ws.test_of:
                    found = True
                    break
                if importer not in seen:
                    seen.add(importer)
                    queue.append(importer)
        if not found:
            out.append(path)
    return sorted(out)


def _is_test_path(ws: Workspace, path: str) -> bool:
    app = owner(ws.apps, path)
    rel = app.rel(path) if app else None
    return bool(app and rel is not None and (app.is_test_file(rel) or rel.endswith("conftest.py")))


def _unanalysable(ev: Evidence, ws: Workspace, app: AppSpec | None, rel: str | None, path: str,
                  whole_suite: Callable[[AppSpec, Reason], None], notes: list[str], why: str = "") -> bool:
    why = f"; {why}" if why else ""
    if app is not None and rel is not None:
        rule = unanalysable_rule(app.config, rel)
        if rule is not None:
            position, selects = rule
            rid = f"unanalysable[{position}]"
            for test in match_tests(selects, ws.tests[app.name]):
                ev.add(app.name, test, Reason(strategy="unanalysable", rule_id=rid, changed_file=path,
                                              text=f"unanalysable change: {path} (rule {rid}{why})"))
            return True
        whole_suite(app, Reason(strategy="unanalysable", changed_file=path,
                                text=f"unanalysable change: {path}" + (f" ({why[2:]})" if why else "")))
        return True
    if ws.suite_mode:  # a file outside every app may feed any of them
        for other in ws.apps:
            whole_suite(other, Reason(strategy="unanalysable", changed_file=path,
                                      text=f"unanalysable change: {path} (outside every app{why})"))
        return True
    notes.append(f"ignored {path}: outside the project folder")
    return False


def _graph_evidence(ev: Evidence, ws: Workspace, coverage: list[CoverageMap], test_set: dict[str, set[str]],
                    notes: list[str]) -> Covered:
    covered = coverage_evidence(ev, ws, coverage, test_set, notes) if coverage else {}
    plain = {p: label for p, label in ws.sources.items() if p not in covered}
    _add_chains(ev, ws, ws.graph.reaching(plain), keep=None)
    for path, apps in covered.items():
        # Tests of apps without a usable map, and tests coverage is too old for, keep graph evidence.
        def keep(app: str, test: str, apps: dict[str, set[str]] = apps) -> bool:
            return app not in apps or test in apps[app]

        _add_chains(ev, ws, ws.graph.reaching({path: ws.sources[path]}), keep=keep)
    return covered


def _add_chains(ev: Evidence, ws: Workspace, reach: dict[str, tuple[int, list[str]]],
                keep: Callable[[str, str], bool] | None, strategy: str = "import_graph", prefix: str = "") -> int:
    """Add a reason per test file in ``reach``; returns how many tests got one."""
    added = 0
    test_of = ws.test_of
    for path, (dist, chain) in reach.items():
        if dist == 0 or path not in test_of:
            continue
        app, rel = test_of[path]
        if keep is not None and not keep(app, rel):
            continue
        changed = chain[-1].split(" (", 1)[0]
        ev.add(app, rel, Reason(strategy=strategy, changed_file=changed, chain=chain,
                                text=prefix + " -> ".join(chain)))
        added += 1
    return added


def _dynamic_evidence(ev: Evidence, ws: Workspace) -> None:
    changed = ", ".join(sorted(p for p in ws.sources if not _is_test_path(ws, p))[:3])
    for dyn in sorted(ws.graph.dynamic):
        if dyn in ws.sources:
            continue
        label = f"{dyn} (imports by computed name; may load {changed})"
        reach = ws.graph.reaching({dyn: label})
        _add_chains(ev, ws, reach, keep=None, strategy="dynamic_import")


def select_tests(repo: Path, base: str | None, head: str | None = None, suite: Suite | None = None, *,
                 history: History | None = None, coverage: CoverageMap | list[CoverageMap] | None = None,
                 budget: str | float | None = None, confidence: float | None = None,
                 cache_dir: Path | None = None, dependents: Dependents | None = None,
                 default_duration: float = 1.0, records: dict[str, Record] | None = None,
                 record_store: Path | None = None) -> Selection:
    """Select the tests a change between ``base`` and ``head`` can affect (None = working tree)."""
    return run_selection(repo, base, head, suite, history=history, coverage=coverage, budget=budget,
                         confidence=confidence, cache_dir=cache_dir, dependents=dependents,
                         default_duration=default_duration, records=records, record_store=record_store)[1]


def run_selection(repo: Path, base: str | None, head: str | None = None, suite: Suite | None = None, *,
                  history: History | None = None, coverage: CoverageMap | list[CoverageMap] | None = None,
                  budget: str | float | None = None, confidence: float | None = None,
                  cache_dir: Path | None = None, dependents: Dependents | None = None,
                  default_duration: float = 1.0, records: dict[str, Record] | None = None,
                  record_store: Path | None = None) -> tuple[Workspace, Selection]:
    """``select_tests``, also returning the workspace (graph, tests) used for explanations."""
    seconds = parse_budget(budget) if budget is not None else None
    # The run allocates hundreds of thousands of small acyclic objects; in a long-lived process
    # (a Prefect worker) the cyclic collector would rescan the whole heap several times meanwhile.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(repo, base, head, suite, history=history, coverage=coverage, budget=budget, seconds=seconds,
                    confidence=confidence, cache_dir=cache_dir, dependents=dependents,
                    default_duration=default_duration, records=records, record_store=record_store)
    finally:
        if enabled:
            gc.enable()


def _run(repo: Path, base: str | None, head: str | None, suite: Suite | None, *, history: History | None,
         coverage: CoverageMap | list[CoverageMap] | None, budget: str | float | None, seconds: float | None,
         confidence: float | None, cache_dir: Path | None, dependents: Dependents | None,
         default_duration: float, records: dict[str, Record] | None,
         record_store: Path | None) -> tuple[Workspace, Selection]:
    ws = build_workspace(repo, base, head, suite, cache_dir)
    notes: list[str] = []
    if records is None and record_store is not None:
        records = {}
        for app in ws.apps:
            found = load_local(ws.root, ws.base, app.name, app.dir, record_store)
            if found is not None:
                records[app.name] = found
    for app in ws.apps:
        if records is not None and app.name in records:
            notes.append(f"{app.name}: per-test record of {records[app.name].commit[:12]} used "
                         f"({len(records[app.name].owner)} tests)")
        elif records is not None:
            notes.append(f"{app.name}: no per-test record, so the import graph was used; record one with "
                         f"`testpilot record --repo {repo}`")
    maps = list(coverage) if isinstance(coverage, list | tuple) else [coverage] if coverage is not None else []
    ev, unanalysable, scenarios = collect_evidence(ws, coverage=maps, dependents=dependents, suite=suite,
                                                   notes=notes, records=records)
    selection = rank(ev, ws.tests, {app.name: app.config.never_run for app in ws.apps}, history=history,
                     budget=budget, seconds=seconds, confidence=confidence, default_duration=default_duration,
                     notes=notes)
    changed = sorted({c.path for c in ws.changes} | {c.old_path for c in ws.changes if c.old_path})
    return ws, selection.model_copy(update={
        "base": base or WORKTREE_LABEL, "head": head or WORKTREE_LABEL, "changed_files": changed,
        "unanalysable": sorted(set(unanalysable)), "base_commit": ws.base or "", "head_commit": ws.head or "",
        "affected_scenarios": scenarios})
