"""Automatic re-runs of failed tests: a test that passes on a re-run is flaky and does not fail the run."""

import json
from pathlib import Path

import pytest
import yaml

from flows.pipeline import pipeline
from testpilot.errors import TestsFailed
from tests.conftest import git, make_repo

pytestmark = pytest.mark.flows

FLAKY = '''import os
import pathlib


def test_sometimes():
    marker = pathlib.Path(os.environ["TESTPILOT_WORKDIR"]) / "flaky-count"
    attempt = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(attempt + 1))
    assert attempt >= 1, "the first attempt fails"
'''


def _suite(tmp_path: Path, always_failing: bool) -> Path:
    repo = make_repo(tmp_path)
    suite = yaml.safe_load((repo / "testpilot.yaml").read_text())
    suite["failures"]["reruns"] = 2
    (repo / "testpilot.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    (repo / "apps/gamma/tests/test_flaky.py").write_text(FLAKY)
    if always_failing:
        (repo / "apps/gamma/tests/test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "flaky tests")
    return repo / "testpilot.yaml"


def test_flaky_test_is_rerun_reported_and_does_not_fail_the_run(prefect_api, tmp_path):
    state = pipeline(suite=str(_suite(tmp_path, always_failing=False)), full=True,
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["flaky"] == 1 and summary["failed"] == 0
    report = json.loads((Path(summary["results_dir"]) / "report.json").read_text())
    [gamma] = [s for s in report["shards"] if s["app"] == "gamma"]
    assert gamma["reruns"] == {"tests/test_flaky.py::test_sometimes": ["passed"]}
    [cluster] = report["clusters"]["clusters"]
    assert cluster["category"] == "flaky" and cluster["tests"] == ["tests/test_flaky.py::test_sometimes"]


def test_a_real_failure_uses_every_rerun_and_fails_the_run(prefect_api, tmp_path):
    state = pipeline(suite=str(_suite(tmp_path, always_failing=True)), full=True,
                     results_dir=str(tmp_path / "results"), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, TestsFailed) and error.failed == 1
    report = json.loads(next((tmp_path / "results").glob("*/report.json")).read_text())
    [gamma] = [s for s in report["shards"] if s["app"] == "gamma"]
    assert gamma["reruns"]["tests/test_broken.py::test_broken"] == ["failed", "failed"]
    assert {c["category"] for c in report["clusters"]["clusters"]} == {"flaky", "product_bug"}


FLIPS = '''import os
import pathlib


def test_flips():
    plan = pathlib.Path(os.environ["FLIP_PLAN"])  # one letter per attempt: P passes, F fails
    letters = plan.read_text()
    plan.write_text(letters[1:])
    assert letters[:1] == "P", "this attempt was planned to fail"
'''


def test_a_test_that_passed_earlier_on_the_same_commit_is_flaky_though_its_rerun_failed(
        prefect_api, tmp_path):
    """Re-run evidence alone calls it a real failure; the run history of the same commit (FLAKY_FLIPS
    changes between pass and fail) makes it flaky."""
    repo = make_repo(tmp_path)
    suite = yaml.safe_load((repo / "testpilot.yaml").read_text())
    suite["failures"]["reruns"] = 1
    plan = tmp_path / "plan"
    suite["apps"]["gamma"]["env"] = {"FLIP_PLAN": str(plan)}  # the test command's environment is an allow-list
    (repo / "testpilot.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    (repo / "apps/gamma/tests/test_flips.py").write_text(FLIPS)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a test that flips")

    def categories(letters: str) -> set[str]:
        plan.write_text(letters)
        state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, results_dir=str(tmp_path / "results"),
                         return_state=True)
        summary = state.result(raise_on_failure=False)
        folder = Path(summary["results_dir"]) if isinstance(summary, dict) else Path(summary.results_dir)
        report = json.loads((folder / "report.json").read_text())
        return {f["category"] for f in report["failures"] if f["node_id"] == "tests/test_flips.py::test_flips"}

    assert categories("P") == set()  # run 1: passed, recorded in the suite's result history
    assert categories("FF") == {"product_bug"}  # failed twice; one flip on record is not yet flaky
    assert categories("P") == set()
    assert categories("FF") == {"flaky"}  # same commit: pass, fail, pass, fail (and its re-run failed)
