"""Selection safety check: seeded source mutations on real code, full test runs, and the selection.

For each mutant (a flipped comparison, a changed constant, a deleted statement or ``return None``)
it commits the mutation in a scratch clone, runs the project's whole test suite, and checks that
``select_tests`` for that diff contains every failing test. It reports safety (the share of mutants
whose failing tests were all selected) and mean reduction (the share of tests not selected).

    uv run python bench/selection_safety.py --mutants 40
    uv run python bench/selection_safety.py --mutants 10 --seed 3 --source testpilot/selection
    uv run python bench/selection_safety.py --projects examples --mutants 60 --seed 2

Projects: this repository (``testpilot/`` mutated, ``tests/`` run) and, when present, each app of an
``examples/**/testpilot.yaml`` suite (its app's source mutated, its tests run with pytest);
``--projects repo`` or ``--projects examples`` checks only one of them.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testpilot.selection import CoverageMap, coverage_map_from_data, select_tests  # noqa: E402
from testpilot.suite import load_suite  # noqa: E402

FLIP = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass
class Mutant:
    file: str
    line: int
    kind: str
    old: str
    new: str  # replacement for the whole line

    def describe(self) -> str:
        return f"{self.file}:{self.line} {self.kind}: {self.old.strip()!r} -> {self.new.strip()!r}"


@dataclass
class Project:
    """What is mutated and what is run: the repository (one ``default`` app) or a suite's apps."""

    name: str
    apps: dict[str, str]  # app -> folder relative to the clone ('' = root)
    sources: list[str]  # files to mutate, relative to the clone
    suite_file: str = ""
    all_tests: list[str] = field(default_factory=list)  # "<app>::<node id>"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,  # noqa: S603
                          text=True).stdout


def mutants_of(path: Path, rel: str) -> list[Mutant]:
    """Single-line mutations of one file; each keeps the file valid Python."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    found: list[Mutant] = []

    def add(node: ast.AST, kind: str, replacement: ast.AST) -> None:
        line = node.lineno  # type: ignore[attr-defined]
        if node.end_lineno != line:  # type: ignore[attr-defined]
            return
        src = lines[line - 1]
        raw = src.encode()  # ast column offsets count UTF-8 bytes, not characters
        start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        new = raw[:start].decode() + ast.unparse(replacement) + raw[end:].decode()
        if new != src:
            found.append(Mutant(rel, line, kind, src, new))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in FLIP:
            add(node, "flip comparison", ast.Compare(node.left, [FLIP[type(node.ops[0])]()], node.comparators))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, bool):
            value = (not node.value) if isinstance(node.value, bool) else node.value + 1
            add(node, "change constant", ast.Constant(value))
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            add(node, "return None", ast.Return(ast.Constant(None)))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                if isinstance(stmt, ast.Expr | ast.Assign | ast.AugAssign | ast.AnnAssign) and \
                        stmt.lineno == stmt.end_lineno and len(node.body) > 1:
                    src = lines[stmt.lineno - 1]
                    indent = src[:len(src) - len(src.lstrip())]
                    found.append(Mutant(rel, stmt.lineno, "delete statement", src, f"{indent}pass"))
    return found


def _env(clone: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1", "CI": "", **extra}


def run_tests(clone: Path, project: Project, timeout: float) -> tuple[set[str], bool]:
    """('<app>::<node id>' of failing tests, timed out or crashed) for every app's whole suite."""
    failing = set()
    for app, folder in project.apps.items():
        cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--timeout", "60"]
        try:
            proc = subprocess.run(cmd, cwd=clone / folder, env=_env(clone), capture_output=True,  # noqa: S603
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return failing, True
        if proc.returncode not in (0, 1, 5):  # killed (e.g. out of memory) or pytest itself failed
            return failing, True
        for line in proc.stdout.splitlines():
            for prefix in ("FAILED ", "ERROR "):
                if line.startswith(prefix):
                    failing.add(f"{app}::{line[len(prefix):].split(' - ')[0].strip()}")
    return failing, False


def coverage_maps(clone: Path, project: Project, work: Path, commit: str, timeout: float) -> list[CoverageMap]:
    """One full run per app under coverage with a context per test, at the base commit."""
    maps = []
    for app, folder in project.apps.items():
        data = work / f"coverage-{app}"
        subprocess.run([sys.executable, "-m", "coverage", "run", f"--source={clone / folder}",  # noqa: S603
                        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "testpilot.selection.coverage_plugin"],
                       cwd=clone / folder, env=_env(clone, COVERAGE_FILE=str(data)), capture_output=True,
                       timeout=timeout)
        if data.exists():
            maps.append(coverage_map_from_data(data, repo_root=clone, commit=commit, app=app))
    return maps


def collect(clone: Path, project: Project) -> list[str]:
    out = []
    for app, folder in project.apps.items():
        text = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",  # noqa: S603
                               "-p", "no:cacheprovider"], cwd=clone / folder, env=_env(clone),
                              capture_output=True, text=True).stdout
        out += [f"{app}::{line.strip()}" for line in text.splitlines() if "::" in line]
    return out


def covered(test: str, chosen: set[str]) -> bool:
    """Whether '<app>::<node id>' runs when the '<app>::<id>' entries in ``chosen`` run."""
    app, _, node = test.partition("::")
    file = node.split("::")[0]
    return test in chosen or f"{app}::{file}" in chosen or any(test.startswith(c + "::") for c in chosen)


def _is_source(rel: Path) -> bool:
    return not (rel.name.startswith("test_") or rel.name.endswith("_test.py") or rel.name == "conftest.py"
                or "tests" in rel.parts or ".venv" in rel.parts)


def projects_in(clone: Path, source_filter: str, name: str, which: str = "all") -> list[Project]:
    """The repository itself (zero-config) and every app of an ``examples/**/testpilot.yaml`` suite;
    ``which`` is ``all``, ``repo`` or ``examples``."""
    out = []
    root_sources = sorted(p.relative_to(clone).as_posix() for p in clone.rglob("*.py")
                          if p.relative_to(clone).as_posix().startswith(source_filter)
                          and _is_source(p.relative_to(clone)))
    if root_sources and which in ("all", "repo"):
        out.append(Project(name, {"default": ""}, root_sources))
    examples = clone / "examples"
    suites = sorted(examples.glob("**/testpilot.yaml")) if examples.is_dir() and which != "repo" else []
    if which == "examples" and not suites:
        raise SystemExit(f"no examples/**/testpilot.yaml in {clone.name}'s HEAD")
    for suite_file in suites:
        suite = load_suite(suite_file, check_paths=False)
        apps = {name: suite.app_dir(name).relative_to(clone.resolve()).as_posix() for name in suite.apps}
        sources = sorted(p.relative_to(clone).as_posix() for folder in apps.values()
                         for p in (clone / folder).rglob("*.py") if _is_source(p.relative_to(clone / folder)))
        out.append(Project(f"examples:{suite_file.parent.relative_to(clone).as_posix()}", apps, sources,
                           suite_file=suite_file.relative_to(clone).as_posix()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=20, help="mutants per project")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default="testpilot/", help="only mutate repository files under this prefix")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="git repository to check (default: this one); its HEAD is cloned")
    parser.add_argument("--projects", choices=("all", "repo", "examples"), default="all",
                        help="check the repository's own tests, the examples/ suite's apps, or both")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per full test run")
    parser.add_argument("--no-coverage", dest="coverage", action="store_false",
                        help="skip the coverage-map variant (one extra full run under coverage)")
    args = parser.parse_args()
    here = args.repo.resolve()
    work = Path(tempfile.mkdtemp(prefix="testpilot-safety-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(here), str(clone)], check=True)  # noqa: S603
        git(clone, "config", "user.email", "s@s")
        git(clone, "config", "user.name", "s")
        base = git(clone, "rev-parse", "HEAD").strip()
        cache = work / "cache"
        results = []
        for project in projects_in(clone, args.source, here.name, args.projects):
            project.all_tests = collect(clone, project)
            baseline, _ = run_tests(clone, project, args.timeout)
            cov = coverage_maps(clone, project, work, base, args.timeout) if args.coverage else None
            suite = load_suite(clone / project.suite_file) if project.suite_file else None
            candidates = [m for src in project.sources for m in mutants_of(clone / src, src)]
            rng = random.Random(args.seed)
            rng.shuffle(candidates)
            by_kind: dict[str, list[Mutant]] = {}
            for mutant in candidates:
                by_kind.setdefault(mutant.kind, []).append(mutant)
            chosen: list[Mutant] = []
            while len(chosen) < args.mutants and any(by_kind.values()):
                for kind in sorted(by_kind):  # round robin, so every operator is represented
                    if by_kind[kind] and len(chosen) < args.mutants:
                        chosen.append(by_kind[kind].pop())
            print(f"{project.name}: {len(project.all_tests)} tests, {len(candidates)} possible mutants, "
                  f"running {len(chosen)}; baseline failures: {len(baseline)}", flush=True)
            for i, mutant in enumerate(chosen, 1):
                target = clone / mutant.file
                lines = target.read_text().splitlines(keepends=True)
                lines[mutant.line - 1] = mutant.new + ("\n" if lines[mutant.line - 1].endswith("\n") else "")
                target.write_text("".join(lines))
                git(clone, "commit", "-qam", "mutant")
                root = clone / project.apps["default"] if not suite else clone
                start = time.perf_counter()
                selection = select_tests(root, base, "HEAD", suite, cache_dir=cache)
                select_s = time.perf_counter() - start
                failing, timed_out = run_tests(clone, project, args.timeout)
                failing -= baseline
                line = f"  [{i}/{len(chosen)}] {mutant.describe()}: {len(failing)} failing"
                for mode, sel in (("graph", selection), ("coverage", select_tests(
                        root, base, "HEAD", suite, cache_dir=cache, coverage=cov) if cov else None)):
                    if sel is None:
                        continue
                    picked = {f"{t.app}::{t.test_id}" for t in sel.selected}
                    missed = sorted(t for t in failing if not covered(t, picked))
                    run_ids = [t for t in project.all_tests if covered(t, picked)]
                    reduction = 1 - len(run_ids) / max(len(project.all_tests), 1)
                    results.append((f"{project.name} [{mode}]", mutant, failing, missed, reduction, timed_out,
                                    select_s))
                    status = "MISSED " + ", ".join(missed) if missed else "ok"
                    line += f"; {mode}: {len(run_ids)}/{len(project.all_tests)} {status}"
                print(line, flush=True)
                git(clone, "reset", "-q", "--hard", base)
        print()
        for mode in sorted({r[0] for r in results}):
            rows = [r for r in results if r[0] == mode]
            counted = [r for r in rows if not r[5]]
            killed = [r for r in counted if r[2]]
            safe = [r for r in counted if not r[3]]
            print(f"{mode}: {len(rows)} mutants, {len(killed)} made tests fail, "
                  f"{len(rows) - len(counted)} timed out or crashed the test run (not counted)")
            if counted:
                print(f"  safety: {100 * len(safe) / len(counted):.1f}% of mutants "
                      f"({len([r for r in killed if not r[3]])}/{len(killed)} of those that made tests fail)")
                print(f"  mean reduction: {100 * statistics.mean(r[4] for r in counted):.1f}% of tests not "
                      f"selected; median selection time {statistics.median(r[6] for r in counted):.2f}s")
            for r in counted:
                if r[3]:
                    print(f"  missed: {r[1].describe()}: {', '.join(r[3])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
