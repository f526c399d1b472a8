"""The coverage-map and cross-app strategies (the engine applies the others inline)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from testpilot.errors import GitError
from testpilot.results import Reason
from testpilot.selection import git
from testpilot.selection.discovery import AppSpec

if TYPE_CHECKING:
    from testpilot.selection.coverage_map import CoverageMap
    from testpilot.selection.engine import Evidence, Workspace
    from testpilot.suite import Suite

# Changed file -> app -> test files (relative to the app) whose coverage is too old to trust. A changed
# file is in this map when coverage narrowed it for at least one app.
Covered = dict[str, dict[str, set[str]]]


def coverage_evidence(ev: Evidence, ws: Workspace, maps: list[CoverageMap], test_set: dict[str, set[str]],
                      notes: list[str]) -> Covered:
    """Select tests that ran the changed lines. A file is narrowed only when every changed statement was
    run by tests (not at import time) and the file has not changed since the coverage was collected."""
    from testpilot.selection.coverage_map import IMPORT_TIME, statement_spans
    from testpilot.selection.engine import _is_test_path, owner

    if ws.base is None:
        notes.append("coverage not used: the base is the working tree")
        return {}
    start = git.merge_base(ws.root, ws.base, ws.head)
    candidates = [c.path for c in ws.changes if c.status == "M" and c.path.endswith(".py")
                  and not _is_test_path(ws, c.path)]
    if not candidates:
        return {}
    lines = git.changed_lines(ws.root, ws.base, ws.head, candidates)
    covered: Covered = {}
    for cov in maps:
        if cov.app not in test_set:
            notes.append(f"coverage map for unknown app {cov.app!r} ignored")
            continue
        try:
            commit = git.resolve_ref(ws.root, cov.commit)
        except GitError:
            notes.append(f"coverage map commit {cov.commit} not in the repository; import graph used instead")
            continue
        stale: set[str] = set()
        stale_tests: set[str] = set()
        if commit != start:
            for change in git.changed_files(ws.root, commit, start):
                stale.update(p for p in (change.path, change.old_path) if p)
            app_spec = next(a for a in ws.apps if a.name == cov.app)
            reach = ws.graph.reaching({p: p for p in stale if p in ws.graph.deps})
            stale_tests = {app_spec.rel(p) or "" for p in reach if owner(ws.apps, p) is app_spec}
        for path in candidates:
            if path in stale or path not in cov.files:
                continue
            source = git.read_file(ws.root, start, path)
            spans = statement_spans(source, lines.get(path, set())) if source is not None else None
            if spans is None:
                continue
            tests: set[str] = set()
            import_time = False
            for first, last in spans:
                for line in range(first, last + 1):
                    ran = cov.tests_for(path, line) or []
                    import_time = import_time or IMPORT_TIME in ran
                    tests.update(ran)
            if import_time:
                continue
            covered.setdefault(path, {})[cov.app] = stale_tests
            changed = sorted(lines.get(path, set()))
            for node in sorted(tests):
                if node.split("::")[0] in test_set[cov.app]:
                    ev.add(cov.app, node, Reason(strategy="coverage", changed_file=path, lines=changed,
                                                 text=f"ran changed lines of {path}: {_ranges(changed)}"))
    return covered


def _ranges(lines: list[int]) -> str:
    out: list[str] = []
    for line in lines:
        if out and out[-1].split("-")[-1] == str(line - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{line}"
        else:
            out.append(str(line))
    return ",".join(out)


def cross_app_evidence(ev: Evidence, apps: list[AppSpec], tests: dict[str, list[str]], changed: dict[str, str],
                       dependents: Callable[[str], Iterable[str]] | None, suite: Suite | None,
                       links: dict[str, tuple[set[str], dict[str, str]]] | None = None) -> dict[str, str]:
    """Apps that depend (transitively) on a changed app run their whole suite: their link to it is at
    run time (HTTP, queues), which imports cannot show. When a dependent app has a per-test record
    (``links``: recorded test files, and test file -> its first connection or subprocess), only its test
    files that opened a
    connection or started a process, or that have no record, can reach the other app. Returns affected
    scenarios -> why."""
    if dependents is None:
        direct: dict[str, list[str]] = {a.name: [] for a in apps}
        for app in apps:
            for dep in app.depends_on:
                direct.setdefault(dep, []).append(app.name)

        def dependents(name: str) -> Iterable[str]:
            return direct.get(name, [])

    affected: dict[str, str] = {}
    for app_name, path in changed.items():
        affected.setdefault(app_name, f"{path} changed")
        seen = {app_name}
        queue = deque([app_name])
        while queue:
            current = queue.popleft()
            for dependent in dependents(current):
                if dependent in seen or dependent not in tests:
                    continue
                seen.add(dependent)
                queue.append(dependent)
                text = f"app {dependent} depends on {app_name}, which changed ({path})"
                affected.setdefault(dependent, text)
                reason = Reason(strategy="dependent_app", changed_file=path, rule_id=app_name, text=text)
                known = (links or {}).get(dependent)
                for test in tests[dependent]:
                    if known is None or test not in known[0]:
                        ev.add(dependent, test, reason)
                    elif test in known[1]:
                        ev.add(dependent, test, reason.model_copy(update={"text": f"{text}; {known[1][test]}"}))
    scenarios: dict[str, str] = {}
    if suite is not None:
        for name, scenario in suite.scenarios.items():
            for step in scenario.steps:
                if step.app in affected:
                    scenarios[name] = f"step {step.step_name} runs in app {step.app}: {affected[step.app]}"
                    break
                if step.test and (step.app, step.test.split("::")[0]) in ev.reasons:
                    scenarios[name] = f"step {step.step_name} runs {step.test}, which is selected"
                    break
    return scenarios
