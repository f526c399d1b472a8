"""``testpilot demo``: the example suite in a throwaway git repository, with a change that breaks one test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from testpilot.environments.local import leftover_workdirs
from testpilot.settings import get_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Testpilot Demo", "-c", "user.email=demo@testpilot.invalid",
                    *args], check=True, capture_output=True)


def make_demo_repo(target: Path) -> Path:
    """Copy the examples into ``target``, commit them, then commit the breaking change."""
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"),
                    dirs_exist_ok=True)
    _git(target, "init", "-q", "-b", "main")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "example suite")
    subprocess.run([sys.executable, str(target / "demo_change.py"), str(target)], check=True, capture_output=True)
    _git(target, "commit", "-q", "-am", "demo: change one payment module")
    return target


def run_demo(keep: bool = False) -> int:
    from flows.cli import run_pipeline

    workdir = Path(tempfile.mkdtemp(prefix="testpilot-demo-"))
    repo = make_demo_repo(workdir / "repo")
    print(f"Demo repository: {repo} (HEAD changes one payment-service module)")
    results = Path(get_settings().results_dir).resolve()
    try:
        # A first, full run at the parent commit records what every test runs (each shard stores its
        # per-test record); the run for the change then selects from that record.
        _git(repo, "checkout", "-q", "HEAD~1")
        print("Baseline: every test at the parent commit, recording what each test runs")
        run_pipeline(str(repo / "testpilot.yaml"), "HEAD", "HEAD", full=True, results=str(results))
        _git(repo, "checkout", "-q", "main")
        print("The change: selected from the record")
        code = run_pipeline(str(repo / "testpilot.yaml"), "HEAD~1", "HEAD", results=str(results))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    leftovers = leftover_workdirs(get_settings().home)
    reports = sorted(results.glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return code
    report = json.loads(reports[-1].read_text())
    selected, skipped = report["selection"]["selected"], report["selection"]["skipped"]
    print(f"\nSelected {len(selected)} of {len(selected) + len(skipped)} tests (node ids or whole files):")
    for test in selected:
        print(f"  {test['app']}::{test['test_id']}: {test['reasons'][0]['text']}")
    for failure in report["failures"]:
        print(f"Failed: {failure['app']}::{failure['node_id']} category={failure['category']} "
              f"owner={failure['owner']}")
    print(f"Environment folders left behind: {len(leftovers)}")
    expected = code == 1 and len(report["failures"]) == 1 and not leftovers
    print("Demo finished as expected: one broken test caught and routed." if expected
          else f"Demo did not go as expected (exit code {code}).")
    return 0 if expected else 1
