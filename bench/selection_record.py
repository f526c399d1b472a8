"""Selection from per-test records vs pytest-testmon, on pinned real projects, with seeded mutants.

For each project (a pinned PyPI sdist, unpacked outside this repository and committed to a scratch
git repository) it:

1. times the plain suite, the suite under ``testpilot record`` and under ``pytest --testmon`` (the
   recording overhead, side by side), and keeps both records at the base commit;
2. draws seeded mutants: one-line edits inside function bodies (bench/selection_safety.py's mutator),
   module-level constant edits, and data-file edits (files the tests read); a mutant counts when the
   full suite (ground truth, cached in ``<cache>/truth-*.json``) fails at least one more test than at
   the base;
3. for each mutant (in the working tree) runs ``testpilot select --repo R --base HEAD --format
   pytest-args`` as a fresh process (start-up included) and ``pytest --testmon --collect-only`` on a
   fresh copy of testmon's database, and scores both: safety (every failing test selected) and
   reduction (share of the suite not selected).

    uv run --frozen python bench/selection_record.py                      # all projects
    uv run --frozen python bench/selection_record.py --projects sqlparse --mutants 20 --quick

Needs network access to PyPI (``pip download``) on the first run; everything is cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.selection_safety import Mutant, mutants_of  # noqa: E402
from testpilot.selection.recording import record_repo  # noqa: E402


@dataclass
class Project:
    name: str
    version: str
    pythonpath: str  # relative to the project folder
    sources: str  # folder whose modules are mutated
    data: tuple[str, ...] = ()  # data-file globs the tests read
    args: tuple[str, ...] = ()
    extra_files: tuple[tuple[str, str], ...] = ()  # written before the base commit (build-time files)


PROJECTS = {p.name: p for p in (
    Project("sqlparse", "0.5.3", ".", "sqlparse", data=("tests/files/*.sql",), args=("tests",)),
    Project("jinja2", "3.1.6", "src", "src/jinja2", data=("tests/res/templates/*.html",), args=("tests",)),
    Project("toolz", "1.0.0", ".", "toolz", args=("toolz",)),
    Project("humanize", "4.12.3", "src", "src/humanize", args=("tests",),
            extra_files=(("src/humanize/_version.py", "__version__ = version = '4.12.3'\n"),)),  # hatch-vcs
    Project("boltons", "25.0.0", ".", "boltons", args=("tests",)),
)}
DEFAULT = "sqlparse,toolz,boltons,humanize"  # jinja2 too with --projects (its suite is the slowest here)
BENCH_DEPS = ["pytest==8.4.2", "pytest-testmon==2.2.0", "markupsafe==3.0.4", "trio==0.35.0", "freezegun==1.5.5"]
PYTEST = ["-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-rfE", "-o", "addopts="]
TESTMON = ["--testmon", "-q", "-p", "no:randomly", "-rfE", "-o", "addopts="]  # testmon needs the cache plugin


def sh(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900,
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


def bench_python(cache: Path) -> str:
    """A virtualenv with only pytest, pytest-testmon and the projects' test dependencies."""
    venv = cache / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        sh([uv, "venv", "-q", "--seed", "-p", sys.executable, str(venv)], timeout=600)  # --seed: pip, for sdists
        sh([uv, "pip", "install", "-q", "--python", str(python), *BENCH_DEPS], timeout=900)
    return str(python)


def checkout(project: Project, cache: Path) -> Path:
    """The sdist, unpacked and committed once (the base commit); later runs reset to it."""
    repo = cache / "projects" / project.name
    if not (repo / ".git").exists():
        dl = cache / "sdist"
        dl.mkdir(parents=True, exist_ok=True)
        spec = f"{project.name}=={project.version}"
        if not list(dl.glob(f"{project.name}-{project.version}.tar.gz")):
            # The bench venv has pip (uv's venvs, like this project's, do not).
            got = sh([bench_python(cache), "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl), spec])
            if got.returncode:
                raise SystemExit(f"pip download {spec} failed (network to PyPI?):\n{got.stderr[-2000:]}")
        archive = next(dl.glob(f"{project.name}-{project.version}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(cache / "projects", filter="data")
        (cache / "projects" / f"{project.name}-{project.version}").rename(repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"{project.name} {project.version} sdist")
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-qfdx", "-e", ".testmondata*")
    for name, text in project.extra_files:  # often git-ignored, so written after the clean
        (repo / name).write_text(text)
    return repo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args],  # noqa: S603
                          check=True, capture_output=True, text=True).stdout


def project_env(repo: Path, project: Project) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo / project.pythonpath), "PYTHONDONTWRITEBYTECODE": "1",
            "CI": "", "TESTPILOT_HOME": str(repo.parent.parent / "home")}


def cpu() -> float:
    """CPU seconds used by finished child processes: steadier than wall time on a shared, loaded machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def failing(repo: Path, project: Project, python: str) -> tuple[set[str], float]:
    start = cpu()
    proc = sh([python, "-m", "pytest", *PYTEST, *project.args], cwd=repo, env=project_env(repo, project))
    out = set()
    for line in proc.stdout.splitlines():
        for prefix in ("FAILED ", "ERROR "):
            if line.startswith(prefix):
                out.add(line[len(prefix):].split(" - ")[0].strip())
    if proc.returncode not in (0, 1):
        out.add(f"<pytest exit {proc.returncode}>")
    return out, cpu() - start


def collected(repo: Path, project: Project, python: str, testmon: bool = False) -> tuple[list[str], float]:
    start = cpu()
    proc = sh([python, "-m", "pytest", "--collect-only", *(TESTMON if testmon else PYTEST), *project.args],
              cwd=repo, env=project_env(repo, project))
    return [ln.strip() for ln in proc.stdout.splitlines() if "::" in ln], cpu() - start


def function_body_mutants(repo: Path, project: Project) -> list[Mutant]:
    import ast

    out = []
    for path in sorted((repo / project.sources).rglob("*.py")):
        rel = path.relative_to(repo).as_posix()
        if "/tests/" in f"/{rel}" or path.name.startswith("test_") or path.name == "conftest.py":
            continue
        tree = ast.parse(path.read_text())
        bodies = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                bodies.update(range(node.body[0].lineno, (node.end_lineno or node.lineno) + 1))
        out += [m for m in mutants_of(path, rel) if m.line in bodies]
    return out


def module_level_mutants(repo: Path, project: Project) -> list[Mutant]:
    import ast

    out = []
    for path in sorted((repo / project.sources).rglob("*.py")):
        rel = path.relative_to(repo).as_posix()
        if "/tests/" in f"/{rel}" or path.name.startswith("test_"):
            continue
        lines = path.read_text().splitlines()
        for node in ast.parse("\n".join(lines)).body:
            if isinstance(node, ast.Assign) and node.lineno == node.end_lineno and isinstance(
                    node.value, ast.Constant) and type(node.value.value) in (int, str) and node.value.value != "":
                value = node.value.value
                new = ast.unparse(ast.Constant(value + 1 if isinstance(value, int) else value[::-1] + "x"))
                src = lines[node.lineno - 1]
                raw = src.encode()
                text = raw[:node.value.col_offset].decode() + new + raw[node.value.end_col_offset:].decode()  # type: ignore[operator]
                out.append(Mutant(rel, node.lineno, "module constant", src, text))
    return out


def data_mutants(repo: Path, project: Project) -> list[Mutant]:
    out = []
    for pattern in project.data:
        for path in sorted(repo.glob(pattern)):
            lines = path.read_text(errors="replace").splitlines()
            if lines:
                rel = path.relative_to(repo).as_posix()
                out.append(Mutant(rel, 1, "data file", lines[0], lines[0][::-1] + " x"))
    return out


def apply(repo: Path, mutant: Mutant) -> None:
    target = repo / mutant.file
    lines = target.read_text(errors="replace").splitlines(keepends=True)
    lines[mutant.line - 1] = mutant.new + ("\n" if lines[mutant.line - 1].endswith("\n") else "")
    target.write_text("".join(lines))


def ground_truth(repo: Path, project: Project, python: str, kind: str, pool: list[Mutant], wanted: int,
                 baseline: set[str], cache: Path, seed: int) -> list[tuple[Mutant, set[str]]]:
    """Mutants (drawn in seeded order) that fail at least one test, with the failing tests; cached."""
    store = cache / f"truth-{project.name}-{project.version}-{kind.replace(' ', '_')}-{seed}.json"
    known: dict[str, list[str]] = json.loads(store.read_text()) if store.exists() else {}
    rng = random.Random(seed)
    rng.shuffle(pool)
    found = []
    for mutant in pool[:wanted * 4]:
        if len(found) >= wanted:
            break
        key = mutant.describe()
        if key not in known:
            apply(repo, mutant)
            fails, _ = failing(repo, project, python)
            git(repo, "checkout", "-q", "--", ".")
            known[key] = sorted(fails - baseline)
            store.write_text(json.dumps(known, indent=0))
        if known[key] and not any(f.startswith("<pytest exit") for f in known[key]):
            found.append((mutant, set(known[key])))
    return found


def covered(test: str, chosen: set[str]) -> bool:
    return test in chosen or test.split("::")[0] in chosen or any(test.startswith(c + "::") for c in chosen)


def run_project(project: Project, args: argparse.Namespace, python: str) -> list[dict[str, object]]:
    cache: Path = args.cache
    repo = checkout(project, cache)
    env = project_env(repo, project)
    all_tests, _ = collected(repo, project, python)
    baseline, plain = failing(repo, project, python)
    # Recording overhead: plain suite, testpilot record, pytest --testmon; same process, interleaved.
    times: dict[str, list[float]] = {"plain": [plain], "testpilot": [], "testmon": []}
    home = Path(env["TESTPILOT_HOME"])
    for _ in range(args.repeat):
        shutil.rmtree(home / "records", ignore_errors=True)  # the compiled-module cache stays, as in use
        os.environ["PYTHONPATH"] = env["PYTHONPATH"]
        start = cpu()
        record_repo(repo, home, python=python, pytest_args=[*PYTEST, *project.args], echo=False)
        times["testpilot"].append(cpu() - start)
        for db in repo.glob(".testmondata*"):
            db.unlink()
        start = cpu()
        sh([python, "-m", "pytest", *TESTMON, *project.args], cwd=repo, env=env)
        times["testmon"].append(cpu() - start)
        if len(times["plain"]) < args.repeat:
            times["plain"].append(failing(repo, project, python)[1])
    pristine = cache / f"testmondata-{project.name}"
    shutil.copy(repo / ".testmondata", pristine)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{project.name} {project.version}: {len(all_tests)} tests; CPU s: suite {med['plain']:.2f}s plain, "
          f"{med['testpilot']:.2f}s recording (+{100 * (med['testpilot'] / med['plain'] - 1):.0f}%), "
          f"{med['testmon']:.2f}s testmon (+{100 * (med['testmon'] / med['plain'] - 1):.0f}%)", flush=True)
    rows: list[dict[str, object]] = [{"project": project.name, "kind": "overhead", **med}]
    cli = str(Path(sys.executable).parent / "testpilot")
    kinds = (("function body", function_body_mutants(repo, project), args.mutants),
             ("module constant", module_level_mutants(repo, project), args.module_mutants),
             ("data file", data_mutants(repo, project), args.data_mutants))
    for kind, pool, wanted in kinds:
        for i, (mutant, fails) in enumerate(ground_truth(repo, project, python, kind, pool, wanted, baseline,
                                                         cache, args.seed), 1):
            apply(repo, mutant)
            start, wall = cpu(), time.perf_counter()
            proc = sh([cli, "select", "--repo", str(repo), "--base", "HEAD", "--format", "pytest-args"], env=env)
            tp_s, tp_wall = cpu() - start, time.perf_counter() - wall
            tp = set(shlex.split(proc.stdout))
            shutil.copy(pristine, repo / ".testmondata")
            tm_list, tm_s = collected(repo, project, python, testmon=True)
            git(repo, "checkout", "-q", "--", ".")
            tm = set(tm_list)
            row: dict[str, object] = {"project": project.name, "kind": kind, "mutant": mutant.describe(),
                                      "failing": len(fails), "select_wall": tp_wall}
            for tool, chosen, secs in (("testpilot", tp, tp_s), ("testmon", tm, tm_s)):
                missed = sorted(t for t in fails if not covered(t, chosen))
                run = sum(1 for t in all_tests if covered(t, chosen))
                row[tool] = {"missed": missed, "reduction": 1 - run / max(len(all_tests), 1), "seconds": secs}
            rows.append(row)
            tps, tms = row["testpilot"], row["testmon"]
            print(f"  [{kind} {i}] {mutant.describe()[:90]}: {len(fails)} failing; testpilot "
                  f"{100 * tps['reduction']:.0f}% {'ok' if not tps['missed'] else 'MISSED'} {tp_s:.2f}s; "  # type: ignore[index]
                  f"testmon {100 * tms['reduction']:.0f}% {'ok' if not tms['missed'] else 'MISSED'}",  # type: ignore[index]
                  flush=True)
    return rows


def summary(rows: list[dict[str, object]]) -> None:
    print("\nCPU seconds of the child processes (the machine is shared; wall times are in --json)")
    print("project     kind             n  | testpilot safety reduction select(med) | testmon safety reduction (collect)")
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in rows:
        if row["kind"] != "overhead":
            groups.setdefault((str(row["project"]), str(row["kind"])), []).append(row)
            groups.setdefault(("ALL", str(row["kind"])), []).append(row)
    for (project, kind), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0])):
        cells = []
        for tool in ("testpilot", "testmon"):
            res = [r[tool] for r in items]
            safe = 100 * sum(1 for r in res if not r["missed"]) / len(res)  # type: ignore[index]
            red = 100 * statistics.mean(r["reduction"] for r in res)  # type: ignore[index]
            sec = statistics.median(r["seconds"] for r in res)  # type: ignore[index]
            cells.append((safe, red, sec))
        (s1, r1, t1), (s2, r2, t2) = cells
        print(f"{project:11} {kind:15} {len(items):3}  | {s1:15.1f}% {r1:8.1f}% {t1:10.2f}s | "
              f"{s2:13.1f}% {r2:8.1f}%  ({t2:.2f}s)")
    over = [r for r in rows if r["kind"] == "overhead"]
    for r in over:
        plain = float(r["plain"])  # type: ignore[arg-type]
        print(f"overhead {r['project']:10} plain {plain:6.2f}s  testpilot record {float(r['testpilot']):6.2f}s "  # type: ignore[arg-type]
              f"({100 * (float(r['testpilot']) / plain - 1):+.0f}%)  testmon {float(r['testmon']):6.2f}s "  # type: ignore[arg-type]
              f"({100 * (float(r['testmon']) / plain - 1):+.0f}%)")  # type: ignore[arg-type]
    missed = [(r["mutant"], r["testpilot"]["missed"]) for r in rows  # type: ignore[index]
              if r["kind"] != "overhead" and r["testpilot"]["missed"]]  # type: ignore[index]
    for mutant, tests in missed:
        print(f"testpilot missed: {mutant}: {', '.join(tests)}")  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", default=DEFAULT, help=f"comma-separated, of {', '.join(PROJECTS)}")
    parser.add_argument("--mutants", type=int, default=30, help="function-body mutants per project")
    parser.add_argument("--module-mutants", type=int, default=4)
    parser.add_argument("--data-mutants", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds for the recording overhead")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "testpilot-bench")))
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    python = bench_python(args.cache)
    rows = []
    for name in args.projects.split(","):
        rows += run_project(PROJECTS[name], args, python)
    summary(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
