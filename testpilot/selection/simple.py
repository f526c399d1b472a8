"""Interim selector: git diff + mapping rules. Replaced by the full engine (issue 4)."""

from __future__ import annotations

import re
import subprocess
from functools import partial
from pathlib import Path

from testpilot.errors import GitError
from testpilot.results import Reason, SelectedTest, Selection
from testpilot.suite import Suite


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GitError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "git failed",
                       file=str(repo), hint="check that the refs exist: git log --oneline")
    return proc.stdout


def changed_files(repo: Path, base: str, head: str) -> list[str]:
    for ref in (base, head):
        if ref and subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                                  capture_output=True, check=False).returncode != 0:
            raise GitError(f"git ref {ref!r} does not exist", file=str(repo), field="base/head",
                           hint="pass --base/--head refs that exist in this repository")
    out = _git(repo, "diff", "--name-only", "--no-renames", f"{base}...{head}" if head else base, "--")
    return [line for line in out.splitlines() if line]


def _group(match: re.Match[str], ref: re.Match[str]) -> str:
    return match.group(int(ref.group(1)))


def _test_files(app_dir: Path, test_paths: list[str]) -> list[str]:
    files: set[str] = set()
    for tp in test_paths:
        root = app_dir / tp
        candidates = [root] if root.is_file() else root.rglob("test_*.py")
        files.update(p.relative_to(app_dir).as_posix() for p in candidates)
    return sorted(files)


def all_tests(suite: Suite, reason: str = "full regression run") -> Selection:
    selection = Selection(base="", head="", mode="full")
    for app, config in suite.apps.items():
        for test in _test_files(suite.app_dir(app), suite.selection_for(app).test_paths or config.test_paths):
            selection.selected.append(SelectedTest(app=app, test_id=test,
                                                   reasons=[Reason(strategy="full", text=reason)]))
    return selection


def select(suite: Suite, repo: Path, base: str, head: str) -> Selection:
    changed = changed_files(repo, base, head)
    selection = Selection(base=base, head=head, changed_files=changed)
    chosen: dict[tuple[str, str], list[Reason]] = {}
    touched_apps: list[str] = []
    for app in suite.apps:
        app_dir = suite.app_dir(app)
        prefix = app_dir.relative_to(repo.resolve()).as_posix() + "/"
        config = suite.selection_for(app)
        tests = _test_files(app_dir, config.test_paths or suite.apps[app].test_paths)
        for path in (c[len(prefix):] for c in changed if c.startswith(prefix)):
            touched_apps.append(app)
            hit = False
            if path in tests:
                chosen.setdefault((app, path), []).append(Reason(strategy="changed_test", changed_file=path,
                                                                text=f"test file changed: {path}"))
                hit = True
            for i, rule in enumerate(config.mapping_rules):
                m = re.fullmatch(rule.source_pattern, path)
                if not m:
                    continue
                patterns = [rule.test_pattern] if isinstance(rule.test_pattern, str) else rule.test_pattern
                for pattern in patterns:
                    target = re.sub(r"\{(\d+)\}", partial(_group, m), pattern)
                    for test in tests:
                        if Path(test).match(target) or test == target:
                            hit = True
                            chosen.setdefault((app, test), []).append(Reason(
                                strategy="mapping_rule", rule_id=rule.id or f"{app}#{i}", changed_file=path,
                                text=f"rule {rule.id or f'{app}#{i}'}: {path} -> {test}"))
            if not hit:
                for test in tests:
                    chosen.setdefault((app, test), []).append(Reason(
                        strategy="unanalysable", changed_file=path, text=f"unanalysable change: {path}"))
                selection.unanalysable.append(f"{prefix}{path}")
    for app in suite.apps:
        for dep in suite.apps[app].depends_on:
            if dep in touched_apps:
                for test in _test_files(suite.app_dir(app), suite.apps[app].test_paths):
                    chosen.setdefault((app, test), []).append(Reason(
                        strategy="depends_on", text=f"{app} depends on changed app {dep}"))
    for app in suite.apps:
        for test in _test_files(suite.app_dir(app), suite.apps[app].test_paths):
            if (app, test) in chosen:
                selection.selected.append(SelectedTest(app=app, test_id=test, reasons=chosen[(app, test)]))
            else:
                selection.skipped.append(SelectedTest(app=app, test_id=test, reasons=[Reason(
                    strategy="no_evidence", text="no changed file maps to it")]))
    return selection
