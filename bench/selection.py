"""Selection benchmark: a synthetic repository with 20,000 modules and 100,000 tests.

Generates the repository under a temporary folder (never committed), commits it, commits a 50-file
change, and times ``select_tests`` cold (empty cache), warm (cache filled at the base commit, the
usual CI case) and repeated, against a naive selector that parses every file with ``ast`` each time.

    uv run python bench/selection.py            # full size
    uv run python bench/selection.py --scale 0.1
"""

from __future__ import annotations

import argparse
import ast
import gc
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testpilot.selection import run_selection  # noqa: E402

MODULES_PER_PACKAGE = 100
TESTS_PER_FILE = 10


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,  # noqa: S603
                          text=True).stdout


def module_source(rng: random.Random, pkg: int, mod: int, n_mods: int) -> str:
    """A module importing a few lower modules: mostly its own package, sometimes an earlier package's."""
    lines = ['"""Generated module."""', "import os", "import json", ""]
    for _ in range(rng.randint(1, 4)):
        if mod > 0 and (pkg == 0 or rng.random() < 0.8):
            target_pkg, target = pkg, rng.randrange(max(0, mod - 10), mod)
        elif pkg > 0:
            target_pkg, target = rng.randrange(max(0, pkg - 5), pkg), rng.randrange(0, 5)  # their "core" modules
        else:
            continue
        if target >= n_mods:
            continue
        style = rng.randrange(4)
        if style == 0:
            lines.append(f"import pkg{target_pkg:03d}.mod{target:03d}")
        elif style == 1:
            lines.append(f"from pkg{target_pkg:03d} import mod{target:03d}")
        elif style == 2 and target_pkg == pkg:
            lines.append(f"from .mod{target:03d} import func_0")
        else:
            lines.append(f"from pkg{target_pkg:03d}.mod{target:03d} import func_1 as f{rng.randrange(99)}")
    lines.append("")
    for i in range(6):
        lines += [f"def func_{i}(x, y={i}):", f"    if x > {i}:", f"        return x * y + {i}",
                  "    total = 0", "    for k in range(y):", "        total += k", "    return total", ""]
    lines.append(f"CONSTANT = {rng.randrange(1000)}")
    return "\n".join(lines) + "\n"


def test_source(targets: list[str]) -> str:
    lines = [f"from {t[:-3].replace('/', '.')} import func_0 as f{i}" for i, t in enumerate(targets)] + [""]
    for i in range(TESTS_PER_FILE):
        lines += [f"def test_case_{i}():", f"    assert f{i % len(targets)}({i}) is not None", ""]
    return "\n".join(lines)


def generate(root: Path, modules: int, tests: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    packages = max(1, modules // MODULES_PER_PACKAGE)
    per_pkg = modules // packages
    sources = []
    for pkg in range(packages):
        folder = root / f"pkg{pkg:03d}"
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        for mod in range(per_pkg):
            (folder / f"mod{mod:03d}.py").write_text(module_source(rng, pkg, mod, per_pkg))
            sources.append(f"pkg{pkg:03d}/mod{mod:03d}.py")
    test_files = tests // TESTS_PER_FILE
    per_test = max(1, -(-len(sources) // test_files))  # every module has a test that imports it
    for n in range(test_files):
        targets = sources[n * per_test:(n + 1) * per_test] or [rng.choice(sources)]
        pkg, mod = int(targets[0][3:6]), int(targets[0][10:13])
        folder = root / "tests" / f"pkg{pkg:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"test_mod{mod:03d}_{n}.py").write_text(test_source(targets))
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    return sources


def naive_select(root: Path, changed: set[str]) -> set[str]:
    """The obvious way: parse every file with ast, resolve absolute/relative imports, walk back.
    The cyclic GC is paused here too, as in the engine, so the ratio compares the methods only."""
    gc.disable()
    try:
        return _naive_select(root, changed)
    finally:
        gc.enable()


def _naive_select(root: Path, changed: set[str]) -> set[str]:
    files = {p.relative_to(root).as_posix() for p in root.rglob("*.py") if ".git" not in p.parts}
    index = {}
    for path in files:
        name = path[:-3].replace("/", ".")
        index[name.removesuffix(".__init__")] = path
    rdeps: dict[str, set[str]] = {}
    for path in files:
        tree = ast.parse((root / path).read_text())
        package = path.rpartition("/")[0].replace("/", ".")
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    target = index.get(".".join(parts[:i]))
                    if target:
                        rdeps.setdefault(target, set()).add(path)
    seen = set(changed)
    queue = deque(changed)
    while queue:
        for importer in rdeps.get(queue.popleft(), ()):
            if importer not in seen:
                seen.add(importer)
                queue.append(importer)
    return {p for p in seen if p.startswith("tests/")}


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 20,000 modules / 100,000 tests")
    parser.add_argument("--changed", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated repository")
    args = parser.parse_args()
    modules, tests = int(20_000 * args.scale), int(100_000 * args.scale)
    work = Path(tempfile.mkdtemp(prefix="testpilot-bench-"))
    repo = work / "repo"
    try:
        t0 = time.perf_counter()
        sources = generate(repo, modules, tests)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "-c", "core.autocrlf=false", "add", "-A")
        git(repo, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-q", "-m", "base")
        base = git(repo, "rev-parse", "HEAD").strip()
        rng = random.Random(11)
        changed = rng.sample(sources, args.changed)
        for path in changed:
            with open(repo / path, "a") as fh:
                fh.write("\nCHANGED = True\n")
        git(repo, "add", "-A")
        git(repo, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-q", "-m", "change")
        head = git(repo, "rev-parse", "HEAD").strip()
        print(f"generated {modules} modules, {tests} tests ({tests // TESTS_PER_FILE} files), "
              f"{args.changed} changed, in {time.perf_counter() - t0:.1f}s")

        def cold() -> object:
            cache = work / f"cold-{time.perf_counter_ns()}"
            return run_selection(repo, base, head, cache_dir=cache)

        cache = work / "warm"
        run_selection(repo, base, base, cache_dir=cache)  # the previous CI run filled the cache at base

        def warm_first() -> object:
            target = work / f"warm-{time.perf_counter_ns()}"
            shutil.copytree(cache, target)
            start = time.perf_counter()
            result = run_selection(repo, base, head, cache_dir=target)
            return time.perf_counter() - start, result

        cold_s, (ws, sel) = timed(cold, args.repeat)  # type: ignore[misc]
        warm_runs = [warm_first() for _ in range(args.repeat)]
        warm_s = statistics.median(t for t, _ in warm_runs)
        parsed_warm = warm_runs[0][1][0].parsed_count  # type: ignore[index]
        repeat_s, _ = timed(lambda: run_selection(repo, base, head, cache_dir=cache), args.repeat)
        naive_s, naive = timed(lambda: naive_select(repo, set(changed)), args.repeat)
        selected_files = {t.test_id for t in sel.selected}  # type: ignore[attr-defined]
        assert naive <= selected_files, "the engine missed tests the naive selector found"
        total_files = len(selected_files) + len(sel.skipped)  # type: ignore[attr-defined]
        print(f"selected {len(selected_files)} of {total_files} test files "
              f"({100 * (1 - len(selected_files) / total_files):.1f}% reduction); naive found {len(naive)}")
        print(f"cold (no cache, parses {ws.parsed_count} files): {cold_s:6.2f} s   target <= 10 s")
        print(f"warm (cache from base, parses {parsed_warm} files): {warm_s:6.2f} s   target <= 1 s")
        print(f"repeated (all cached):                 {repeat_s:6.2f} s")
        print(f"naive (ast.parse every file):          {naive_s:6.2f} s")
        print(f"ratio naive / warm: {naive_s / warm_s:.1f}x   naive / cold: {naive_s / cold_s:.1f}x   "
              f"(medians of {args.repeat})")
    finally:
        if args.keep:
            print(f"kept {repo}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
