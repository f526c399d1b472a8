"""`testpilot demo` against a real `prefect server start` (the test harness serves no UI), then the run
page and its summary as a person sees them: rendered by Debian's headless chromium, read from the DOM."""

import json
import os
import re
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO, need
from tests.integration.conftest import prefect_server
from tests.ui.chromium import Browser, chromium_path

pytestmark = [pytest.mark.flows, pytest.mark.slow]
def summary_artifact_id(api: str, run_id: str) -> str:
    body = json.dumps({"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["testpilot-summary"]}}})
    req = urllib.request.Request(f"{api}/artifacts/filter", data=body.encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as resp:  # noqa: S310 - loopback
        [artifact] = json.load(resp)
    return str(artifact["id"])


@pytest.fixture
def full_server(tmp_path):
    """A real `prefect server start` that serves the UI (the harness serves none)."""
    with prefect_server(tmp_path / "server", PREFECT_UI_ENABLED="true") as url:
        yield url


def test_demo_run_page_shows_failure_owner_category_and_skipped_tests(full_server, tmp_path):
    need(chromium_path() is not None, "Debian's chromium package (apt-get install chromium)")
    env = {**os.environ, "PREFECT_API_URL": full_server, "TESTPILOT_HOME": str(tmp_path / "home"),
           "TESTPILOT_RESULTS_DIR": str(tmp_path / "results")}
    demo = subprocess.run([sys.executable, "-m", "flows.cli", "demo"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    run_url = re.findall(r"Flow run: (\S+)", demo.stdout)[-1]  # the change's run (the first one records)
    run_id = run_url.rsplit("/", 1)[-1]
    junit = tmp_path / "results" / run_id / "junit.xml"
    suites = list(ET.parse(junit).getroot().iter("testsuite"))
    total, skipped = (sum(int(s.get(k)) for s in suites) for k in ("tests", "skipped"))
    web = next(s for s in suites if s.get("name") == "web-frontend")
    report = json.loads((junit.parent / "report.json").read_text())
    # web-frontend's selected test files (the record narrows them to those that talk to a service) never
    # ran: payment-service, which they depend on, failed.
    skipped_web = [t["test_id"] for t in report["selection"]["selected"] if t["app"] == "web-frontend"]
    n = len(skipped_web)
    assert n and web.get("skipped") == str(n) and skipped == n

    with Browser(height=1000) as browser:
        browser.open(run_url)
        browser.wait_for("owner:payments-team")  # the run's tags, in its header
        browser.wait_for("Failed")
        assert browser.click_text("Artifacts")
        # The cards render before their descriptions arrive (seen on a loaded machine): wait for the verdict.
        page = browser.wait_for(f"FAILED: 1 of {total} test(s) failed")
        tab = page.split("Job Variables", 1)[1]
        first = tab.split("\nTask runs\n", 1)[0]  # the UI lists the flow run's own artifacts first
        assert "testpilot-summary" in first and "testpilot-results" not in first
        assert f"FAILED: 1 of {total} test(s) failed" in first  # the verdict, as the card's description

        browser.open(f"{full_server.removesuffix('/api')}/artifacts/artifact/{summary_artifact_id(full_server, run_id)}")
        text = browser.wait_for("Not run or skipped")
    assert text.index("Failures (1)") < text.index(f"Not run or skipped ({n})") < text.index("Selection")
    failures = text[text.index("Failures (1)"):text.index("Not run or skipped")]
    assert "tests/test_fees.py::test_bank_transfer_fee_is_capped" in failures
    assert "owner payments-team" in failures and "category product_bug" in failures
    not_run = text[text.index(f"Not run or skipped ({n})"):text.index("Scenarios")]
    for name in skipped_web:
        assert re.search(rf"web-frontend\s+{re.escape(name)}\s+dependency app:payment-service#\d failed", not_run), not_run
    assert f"{total} tests" in text and f"{n} skipped ({n} not run)" in text
    assert "end-to-end-payment" in text and "passed" in text[text.index("Scenarios"):]

