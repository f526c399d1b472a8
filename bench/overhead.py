"""Orchestration overhead: the example suite through the pipeline vs. directly with pytest.

    uv run python bench/overhead.py [--delay 0.4] [--repeat 3]

``--delay`` makes every example test sleep that long (TESTPILOT_EXAMPLE_DELAY), so the suite takes
at least a minute (166 tests x 0.4 s). Both ways run the whole suite sequentially on this machine,
in the same process, with the same interpreters: the pipeline with ``max_parallel=1``, the direct
way as one ``pytest`` per app. Overhead = (pipeline - direct) / direct. Medians of ``--repeat``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def make_repo(target: Path) -> Path:
    shutil.copytree(ROOT / "examples", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b.invalid", "commit",
                                                  "-qm", "examples"]):
        subprocess.run(["git", "-C", str(target), *args], check=True)
    return target


def run_direct(repo: Path, venvs: dict[str, str], delay: float) -> float:
    """The naive way: pytest in each app folder, one after another, with the same interpreters."""
    from testpilot.suite import load_suite

    suite = load_suite(repo / "testpilot.yaml")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for app, config in suite.apps.items():
            env = {**os.environ, **config.env, "TESTPILOT_EXAMPLE_DELAY": str(delay),
                   "TESTPILOT_DB_PAYMENT_DB": f"sqlite:///{scratch}/payments.db",
                   "PATH": f"{Path(venvs[app]).parent}{os.pathsep}{os.environ['PATH']}"}
            subprocess.run(["pytest", "-q", "-p", "no:cacheprovider", *config.test_paths], cwd=suite.app_dir(app),
                           env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_pipeline(repo: Path, delay: float, results: Path) -> tuple[float, int]:
    from flows.pipeline import pipeline

    os.environ["TESTPILOT_EXAMPLE_DELAY"] = str(delay)
    started = time.perf_counter()
    state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, max_parallel=1, scenarios=False,
                     results_dir=str(results),
                     return_state=True)
    elapsed = time.perf_counter() - started
    summary = state.result(raise_on_failure=False)
    return elapsed, int(summary["tests"]) if isinstance(summary, dict) else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.4, help="seconds each test sleeps")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    os.environ["TESTPILOT_PASS_ENV"] = "TESTPILOT_EXAMPLE_DELAY"
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import ensure_api
    from testpilot.settings import get_settings

    api, _ = ensure_api(get_settings().home)
    with tempfile.TemporaryDirectory() as tmp, temporary_settings(updates={PREFECT_API_URL: api}):
        repo = make_repo(Path(tmp) / "repo")
        _, tests = run_pipeline(repo, 0.0, Path(tmp) / "warm")  # builds and caches the venvs; not timed
        venvs = {p.name.rsplit("-", 1)[0]: str(p / "bin" / "python")
                 for p in (get_settings().home / "venvs" / "integration-0").iterdir()}
        piped, direct = [], []
        for i in range(args.repeat):
            piped.append(run_pipeline(repo, args.delay, Path(tmp) / f"r{i}")[0])
            direct.append(run_direct(repo, venvs, args.delay))
            print(f"round {i + 1}: pipeline {piped[-1]:.2f}s, direct pytest {direct[-1]:.2f}s", flush=True)
    p, d = statistics.median(piped), statistics.median(direct)
    print(f"tests: {tests}, per-test delay {args.delay}s, rounds: {args.repeat}")
    print(f"pipeline (median)       {p:8.2f} s")
    print(f"direct pytest (median)  {d:8.2f} s")
    print(f"ratio pipeline/direct   {p / d:8.3f}")
    print(f"orchestration overhead  {100 * (p - d) / d:8.2f} %   (target <= 5 %, aim 2 %)")


if __name__ == "__main__":
    main()
