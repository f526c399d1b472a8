"""The clustering set: one-line bugs seeded into real open-source projects, each project's own suite run per bug.

    uv run python bench/seeded_failures.py              # build (or reuse) the JUnit files, about 10-15 min
    uv run python bench/failure_clusters.py             # score clustering on them

Projects are pinned sdists from PyPI (sha256 checked), unpacked under ``/work/cache/fail13`` (or
``$TESTPILOT_BENCH_CACHE``), never in the repository. Their suites run in a separate small virtualenv (pytest,
plus what their tests import) made with uv, so the suites do not load this project's pytest plugins.
For each project, mutants (bench/selection_safety.py's mutator: flipped comparison, changed constant,
``return None``, deleted statement) are tried in a seeded random order until ``--per-project`` of them make
at least one test fail; each run's JUnit file (pytest's default xunit2) is kept with the mutant as ground truth.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from selection_safety import Mutant, mutants_of  # noqa: E402

CACHE = Path(os.environ.get("TESTPILOT_BENCH_CACHE", "/work/cache/fail13"))
UV = ROOT / ".venv-bootstrap" / "bin" / "uv"
SUITE_PACKAGES = ["pytest==8.3.3", "freezegun==1.5.1", "coverage==7.6.1"]


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    sha256: str
    sources: str  # folder of the package to mutate, relative to the unpacked sdist
    tests: str  # what pytest runs
    pythonpath: str = "."

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


# Chosen for suites that run in a few seconds on two shared cores, pure Python, no network.
PROJECTS = [
    Project("toolz", "0.12.1", "ecca342664893f177a13dac0e6b41cbd8ac25a358e5f215316d43e2100224f4d", "toolz",
            "toolz/tests"),
    Project("semver", "3.0.2", "6253adb39c70f6e51afed2fa7152bcd414c411286088fb4b9effb133885ab4cc", "src/semver",
            "tests", "src"),
    Project("sqlparse", "0.5.1", "bb6b4df465655ef332548e24f08e205afc81b9ab86cb1c45657a7ff173a3a00e", "sqlparse",
            "tests"),
    Project("humanize", "4.11.0", "e66f36020a2d5a974c504bd2555cf770621dbdbb6d82f94a6857c0b1ea2608be",
            "src/humanize", "tests", "src"),
]


def suite_python() -> Path:
    venv = CACHE / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([str(UV), "venv", "-q", "--seed", str(venv), "--python", sys.executable], check=True)  # noqa: S603
        subprocess.run([str(UV), "pip", "install", "-q", *SUITE_PACKAGES], check=True,  # noqa: S603
                       env={**os.environ, "VIRTUAL_ENV": str(venv)})
    return python


def unpacked(project: Project) -> Path:
    """The pristine sdist tree, downloaded (sha256-checked) and unpacked once."""
    sdists, src = CACHE / "sdist", CACHE / "src"
    archive = sdists / f"{project.name}-{project.version}.tar.gz"
    if not archive.exists():
        sdists.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(suite_python()), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",  # noqa: S603
                        f"{project.name}=={project.version}", "-d", str(sdists)], check=True)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != project.sha256:
        raise SystemExit(f"{archive}: sha256 {digest} is not the pinned {project.sha256}")
    tree = src / project.folder
    if not tree.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")
    return tree


def run_suite(python: Path, tree: Path, project: Project, junit: Path, timeout: float = 120) -> int:
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", f"--junitxml={junit}",
           project.tests]
    env = {**os.environ, "PYTHONPATH": str(tree / project.pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, timeout=timeout)  # noqa: S603
    except subprocess.TimeoutExpired:  # a mutant that hangs the suite: kept as "no failures", not re-run
        junit.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites name="timed out"/>\n')
        return -1
    return proc.returncode


def failures_in(junit: Path) -> int:
    if not junit.exists():
        return 0
    text = junit.read_text(errors="replace")
    return text.count("<failure") + text.count("<error")


def mutant_id(project: Project, mutant: Mutant) -> str:
    return hashlib.sha1(f"{project.folder}:{mutant.describe()}".encode()).hexdigest()[:10]


def build(per_project: int, max_tries: int, seed: int, cached_only: bool = False) -> Path:
    python = suite_python()
    out = CACHE / "junit"
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, object]] = []
    for project in PROJECTS:
        pristine = unpacked(project)
        base_junit = out / f"{project.folder}-baseline.xml"
        work = pristine if cached_only else CACHE / "work" / project.folder
        if cached_only and not base_junit.exists():
            continue
        if not cached_only:
            if work.exists():
                shutil.rmtree(work)
            shutil.copytree(pristine, work)
        if not base_junit.exists():
            run_suite(python, work, project, base_junit)
        candidates = [m for path in sorted((work / project.sources).rglob("*.py"))
                      if "tests" not in path.relative_to(work).parts
                      for m in mutants_of(path, path.relative_to(work).as_posix())]
        random.Random(seed).shuffle(candidates)
        kept = tries = 0
        for mutant in candidates:
            if kept >= per_project or tries >= max_tries:
                break
            junit = out / f"{project.folder}-{mutant_id(project, mutant)}.xml"
            target = work / mutant.file
            original = target.read_text()
            if not junit.exists() and cached_only:
                continue
            if not junit.exists():
                lines = original.splitlines(keepends=True)
                lines[mutant.line - 1] = mutant.new + ("\n" if lines[mutant.line - 1].endswith("\n") else "")
                target.write_text("".join(lines))
                start = time.perf_counter()
                code = run_suite(python, work, project, junit)
                target.write_text(original)
                print(f"  {project.folder} {mutant.describe()}: exit {code}, {failures_in(junit)} failures "
                      f"({time.perf_counter() - start:.1f} s)", flush=True)
            tries += 1
            if failures_in(junit) > failures_in(base_junit):
                kept += 1
                manifest.append({"project": project.folder, "mutant": mutant.describe(),
                                 "id": mutant_id(project, mutant), "junit": junit.name})
        print(f"{project.folder}: {kept} seeded bugs with failures out of {tries} tried", flush=True)
    path = out / "manifest.json"
    path.write_text(json.dumps({"baselines": {p.folder: f"{p.folder}-baseline.xml" for p in PROJECTS
                                              if (out / f"{p.folder}-baseline.xml").exists()},
                                "mutants": manifest}, indent=1))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-project", type=int, default=25, help="seeded bugs with failures per project")
    parser.add_argument("--max-tries", type=int, default=45, help="mutants run per project at most")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cached-only", action="store_true",
                        help="write the manifest from the JUnit files already built; run nothing")
    args = parser.parse_args()
    print(f"manifest: {build(args.per_project, args.max_tries, args.seed, args.cached_only)}")


if __name__ == "__main__":
    main()
