"""A triage decision made between two runs changes the category of the same failure in the next run."""

import json

import pytest

from flows.cli import main
from flows.pipeline import pipeline
from flows.triage import triage
from tests.conftest import commit_change, make_repo
from tests.flows.test_pipeline import artifacts_of

pytestmark = pytest.mark.flows


def report_of(results) -> dict:
    return json.loads(next(results.glob("*/report.json")).read_text())


def test_triage_decision_recategorises_the_same_failure_in_the_next_run(prefect_api, tmp_path, capsys):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty + 1")
    suite = str(repo / "testpilot.yaml")
    first = pipeline(suite=suite, base="HEAD~1", head="HEAD", results_dir=str(tmp_path / "r1"), return_state=True)
    [failure] = report_of(tmp_path / "r1")["failures"]
    assert failure["category"] == "product_bug" and "triage" not in failure
    assert first.message.startswith("FAILED: 1 of ") and "product_bug, owner alpha-team" in first.message

    # the Prefect form (the triage deployment's flow) and the CLI write the same store
    state = triage(suite="minisuite", cluster=failure["cluster"], category="environment", status="known",
                   note="INFRA-12", return_state=True)
    assert state.is_completed(), state.message
    assert main(["triage", "--suite-name", "minisuite"]) == 0
    assert f"{failure['cluster']}: category=environment status=known note=INFRA-12" in capsys.readouterr().out
    assert main(["triage", failure["cluster"], "--suite-name", "minisuite"]) == 2  # changes nothing
    assert "must change something" in capsys.readouterr().err

    second = pipeline(suite=suite, base="HEAD~1", head="HEAD", results_dir=str(tmp_path / "r2"), return_state=True)
    [again] = report_of(tmp_path / "r2")["failures"]
    assert again["node_id"] == failure["node_id"] and again["cluster"] == failure["cluster"]
    assert again["category"] == "environment" and again["triage"] == "known, INFRA-12"
    assert "(environment, owner alpha-team)" in second.message
    summary = str(artifacts_of(second.state_details.flow_run_id)["testpilot-summary"].data)
    assert "**category** environment (triaged: known, INFRA-12; computed: product_bug)" in summary
    assert "## History of failing tests" in summary and "newest first** ✗" in summary
