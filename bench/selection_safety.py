"""Selection safety check: seeded source mutations on real code, full test runs, and the selection.

For each mutant (a flipped comparison, a changed constant, a deleted statement or ``return None``)
it commits the mutation in a scratch clone, runs the project's whole test suite, and checks that
``select_tests`` for that diff contains every failing test. It reports safety (the share of mutants
whose failing tests were all selected) and mean reduction (the share of tests not selected).

    uv run python bench/selection_safety.py --mutants 40
    uv run python bench/selection_safety.py --mutants 10 --seed 3 --source testpilot/selection

Projects: this repository (``testpilot/`` mutated, ``tests/`` run) and, when present, each app of an
``examples/**/testpilot.yaml`` suite (its app's source mutated, its tests run with pytest).
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
    name: str
    folder: str  # app folder relative to the clone ('' = root)
    sources: list[str]  # files to mutate, relative to the clone
    app: str  # the app name the selection uses
    suite_file: str = ""
    all_tests: list[str] = field(default_factory=list)


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
        start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        new = src[:start] + ast.unparse(replacement) + src[end:]
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


def run_tests(clone: Path, project: Project, timeout: float) -> tuple[set[str], bool]:
    """(failing node ids relative to the app folder, timed out) for the project's whole suite."""
    cwd = clone / project.folder if project.folder else clone
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1", "CI": ""}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--timeout", "60"]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,  # noqa: S603
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return set(), True
    failing = set()
    for line in proc.stdout.splitlines():
        for prefix in ("FAILED ", "ERROR "):
            if line.startswith(prefix):
                failing.add(line[len(prefix):].split(" - ")[0].strip())
    return failing, False


def coverage_map(clone: Path, project: Project, work: Path, commit: str, timeout: float) -> CoverageMap | None:
    """One full run under coverage with a context per test, at the base commit."""
    cwd = clone / project.folder if project.folder else clone
    data = work / f"coverage-{project.app}"
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1", "COVERAGE_FILE": str(data)}
    subprocess.run([sys.executable, "-m", "coverage", "run", f"--source={cwd}", "-m", "pytest", "-q",  # noqa: S603
                    "-p", "no:cacheprovider", "-p", "testpilot.selection.coverage_plugin"],
                   cwd=cwd, env=env, capture_output=True, timeout=timeout)
    if not data.exists():
        return None
    return coverage_map_from_data(data, repo_root=clone, commit=commit, app=project.app)


def collect(clone: Path, project: Project) -> list[str]:
    cwd = clone / project.folder if project.folder else clone
    env = {**os.environ, "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],  # noqa: S603
                         cwd=cwd, env=env, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def covered(test: str, chosen: set[str]) -> bool:
    file = test.split("::")[0]
    return test in chosen or file in chosen or any(test.startswith(c + "::") for c in chosen)


def projects_in(clone: Path, source_filter: str) -> list[Project]:
    out = [Project("testpilot", "", sorted(p.relative_to(clone).as_posix() for p in (clone / "testpilot").rglob("*.py")
                                            if p.relative_to(clone).as_posix().startswith(source_filter)),
                   "default")]
    for suite_file in sorted((clone / "examples").glob("**/testpilot.yaml")) if (clone / "examples").is_dir() else []:
        suite = load_suite(suite_file, check_paths=False)
        for name in suite.apps:
            folder = suite.app_dir(name).relative_to(clone.resolve()).as_posix()
            sources = sorted(p.relative_to(clone).as_posix() for p in (clone / folder).rglob("*.py")
                             if "test" not in p.name and "tests" not in p.relative_to(clone / folder).parts)
            out.append(Project(f"examples:{name}", folder, sources, name,
                               suite_file=suite_file.relative_to(clone).as_posix()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=20, help="mutants per project")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--source", default="testpilot/", help="only mutate files under this prefix")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per full test run")
    parser.add_argument("--no-coverage", dest="coverage", action="store_false",
                        help="skip the coverage-map variant (one extra full run under coverage)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="testpilot-safety-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(here), str(clone)], check=True)  # noqa: S603
        git(clone, "config", "user.email", "s@s")
        git(clone, "config", "user.name", "s")
        base = git(clone, "rev-parse", "HEAD").strip()
        cache = work / "cache"
        results = []
        for project in projects_in(clone, args.source):
            project.all_tests = collect(clone, project)
            baseline, _ = run_tests(clone, project, args.timeout)
            cov = coverage_map(clone, project, work, base, args.timeout) if args.coverage else None
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
                root = clone / project.folder if not suite else clone
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
                    picked = {t.test_id for t in sel.selected if t.app == project.app}
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
                  f"{len(rows) - len(counted)} timed out")
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
