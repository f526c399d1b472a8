"""The node flow (``testpilot-node``): ONE graph node (an app shard) on whichever worker picks it up.

The pipeline starts it through the node deployment (``execution: work-pool``). It shares no folder
with the pipeline: it writes the requested commit out from its worker's own clone, builds its own
copy of a local environment (a remote one is used as handed over), runs the shard with the same
code as threaded nodes, and publishes the ShardResult as its ``testpilot-shard`` artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed, State

from tasks.execution import run_node
from tasks.nodes import checkout_node, provision_copy, publish_shard, release_copy
from tasks.source import run_folder
from tasks.test_data import seed_data
from testpilot.nodes import NodeResult, parse_request, worker_info
from testpilot.results import ShardResult
from testpilot.settings import get_settings


@flow(name="testpilot-node")  # the run's name, "<node> @ <commit> (attempt N)", is given by tasks/nodes.py
def node(request: dict[str, Any]) -> dict[str, Any] | State:
    """Run one node of a pipeline run here; the result goes to the ``testpilot-shard`` artifact."""
    req = parse_request(request)
    run_id = str(flow_run.id or "local")
    try:
        tree, clone = checkout_node(req, run_id)
        env = req.env or seed_data(tree.suite, provision_copy(tree.suite, req, run_id), [req.app], run_id)
        try:
            state = run_node(tree.suite, req.node, req.app, req.shard, req.tests, env, return_state=True)
        finally:
            if req.env is None:
                release_copy(tree.suite, env)
        shard = state.result(raise_on_failure=False)
    finally:
        shutil.rmtree(run_folder(run_id), ignore_errors=True)
    if not isinstance(shard, ShardResult):
        raise RuntimeError(f"node {req.node} ended {state.name} without a result: {state.message}")
    publish_shard(NodeResult(shard=shard, worker=worker_info(get_settings().home, Path(clone)), attempt_run=run_id))
    summary = {"node": req.node, "tests": len(shard.results), "failed": len(shard.failures)}
    if not shard.ok:
        return Failed(message=f"{summary['failed']} of {summary['tests']} test(s) failed", data=summary)
    return summary
