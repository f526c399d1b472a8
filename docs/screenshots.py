"""Make the screenshots in docs/images/ (run summary, run graph, failing-test history, pool locks).

    uv run python docs/screenshots.py [--port 4360]

Starts its own `prefect server start` (temporary PREFECT_HOME) on --port, makes the demo repository,
runs the pipeline once on the commit before the demo's change (every test passes) and once on the
change (one test fails, web-frontend is not run), then photographs the second run in headless chromium.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "docs" / "images"

from flows.server import free_port, throwaway_server  # noqa: E402


def artifact_id(key: str, run_id: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return str(artifact.id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port for the Prefect server (default: a free one)")
    args = parser.parse_args()
    port = args.port or free_port()
    work = Path(tempfile.mkdtemp(prefix="testpilot-screenshots-"))
    os.environ.update(PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      TESTPILOT_HOME=str(work / "home"), TESTPILOT_RESULTS_DIR=str(work / "results"))
    server = ExitStack()
    server.enter_context(throwaway_server(work / "prefect", port=port, PREFECT_UI_ENABLED="true"))
    try:
        from flows.demo import make_demo_repo
        from flows.pipeline import pipeline
        from tests.ui.chromium import Browser

        repo = make_demo_repo(work / "repo")
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", "HEAD~1"], check=True)
        pipeline(suite=str(repo / "testpilot.yaml"), full=True, return_state=True)  # the last good run
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
        state = pipeline(suite=str(repo / "testpilot.yaml"), base="HEAD~1", head="HEAD", return_state=True)
        run_id = str(state.state_details.flow_run_id)
        ui = f"http://127.0.0.1:{port}"
        OUT.mkdir(parents=True, exist_ok=True)
        with Browser(width=1400, height=1000) as b:
            b.open(f"{ui}/runs/flow-run/{run_id}")
            b.wait_for("owner:payments-team")
            time.sleep(8)  # the graph canvas draws after the data arrives
            b.screenshot(OUT / "run-graph.png")
            for key, name, height, shown in (
                    ("testpilot-history-example-shop", "history", 800, "changed since it last passed"),
                    ("testpilot-locks", "locks", 500, "held by"), ("testpilot-summary", "summary", 2400, "Selection")):
                b.resize(height)
                b.open(f"{ui}/artifacts/artifact/{artifact_id(key, run_id)}")
                b.wait_for(shown)
                time.sleep(3)
                b.screenshot(OUT / f"{name}.png")
        print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} to {OUT}")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
