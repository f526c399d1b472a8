"""The pipeline records every shard and the next run selects from that record."""

import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.pipeline import pipeline
from tasks.records import load_records
from testpilot.suite import load_suite
from tests.conftest import commit_change, make_repo

pytestmark = pytest.mark.flows


def test_full_run_records_each_shard_and_the_next_run_selects_from_it(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    first = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD", head="HEAD", full=True,
                     results_dir=str(tmp_path / "full"), return_state=True)
    assert first.is_completed(), first.message
    with get_client(sync_client=True) as client:
        pointers = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["testpilot-record-minisuite-beta"])))
    mine = [p for p in pointers if p.flow_run_id == first.state_details.flow_run_id]  # other tests' runs too
    assert len(mine) == 2  # beta runs in two shards: one part each
    records = load_records(load_suite(repo / "testpilot.yaml"), "HEAD")
    assert set(records) == {"alpha", "beta", "gamma"}
    assert "tests/test_prices.py::test_total" in records["alpha"].owner
    assert records["alpha"].deps("tests/test_prices.py::test_total", "units") == [
        "apps/alpha/src/alpha/prices.py::total"]

    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    second = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD",
                      results_dir=str(tmp_path / "change"), return_state=True)
    assert second.is_completed(), second.message
    report = json.loads(next(Path(tmp_path / "change").glob("*/report.json")).read_text())
    selected = {(t["app"], t["test_id"]): t["reasons"] for t in report["selection"]["selected"]}
    # beta depends on alpha, but its record shows no test reaching another process: only alpha runs.
    assert set(selected) == {("alpha", "tests/test_prices.py")}
    texts = [r["text"] for r in selected[("alpha", "tests/test_prices.py")]]
    assert "ran apps/alpha/src/alpha/prices.py::total (changed)" in texts
