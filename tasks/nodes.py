"""Graph nodes as flow runs of the node deployment (``execution: work-pool``), and the node's own steps.

``run_on_pool`` (in the pipeline) starts a node flow run with ``run_deployment(as_subflow=True)``, so
it shows as a child of the pipeline run, follows it, and reads its ``testpilot-shard`` artifact
back from the API. A node run that ends without one (crashed, or silent: its worker died) is run
once more, on any worker; after that every test it owed is reported as crashed, with the reason.
The other tasks here are the steps of the node flow itself (``flows/nodes.py``) on the worker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.states import Cancelling, Crashed, Failed, State

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.environments import _request, get_provider
from tasks.source import run_folder
from testpilot.environments.base import Environment
from testpilot.environments.local import LocalProvider
from testpilot.errors import ConfigError
from testpilot.execution.shard import lost_shard
from testpilot.nodes import (
    SHARD_KEY,
    NodeRequest,
    NodeResult,
    clone_lock,
    ensure_clone,
    node_parameters,
    origin_of,
    result_from_markdown,
    result_markdown,
)
from testpilot.results import ShardResult
from testpilot.settings import get_settings
from testpilot.source import SourceTree, prepare_source

HEARTBEAT = "prefect.flow-run.heartbeat"
POLL_SECONDS = 2.0


@task(name="run-on-pool", task_run_name="{request.node}", **TASK_DEFAULTS)
def run_on_pool(deployment: str, request: NodeRequest) -> ShardResult | State[ShardResult]:
    """One graph node as a flow run of ``deployment``; retried once (a new flow run) if it is lost."""
    logger = get_run_logger()
    why = ""
    for attempt in (1, 2):
        run = start_node(deployment, request, attempt)
        logger.info("%s runs as flow run %s of %s (attempt %d of 2)", request.node, run.name, deployment, attempt)
        found, why = follow_node(run.id)
        if found is not None:
            shard = found.shard
            logger.info("%s ran on %s (home %s)", request.node, found.worker.host, found.worker.home)
            break
        logger.warning("%s: %s%s", request.node, why, "; running it once more" if attempt == 1 else "")
    else:
        shard = lost_shard(request.app, request.shard, request.tests, f"NodeLost: {why}", request.env)
    if not shard.ok:
        return Failed(message=f"{len(shard.failures)} of {len(shard.results)} test(s) failed", data=shard)
    return shard


def start_node(deployment: str, request: NodeRequest, attempt: int) -> FlowRun:
    """A flow run of the node deployment for ``request``, a child of this pipeline run (not waited for)."""
    from prefect.exceptions import ObjectNotFound

    try:
        name = f"{request.node} @ {request.commit[:10]} (attempt {attempt})"
        return run_deployment(name=deployment, parameters=node_parameters(request),  # type: ignore[return-value]
                              as_subflow=True, timeout=0, flow_run_name=name,
                              tags=["testpilot-node", run_tag(request.run_id)])
    except ObjectNotFound:
        raise ConfigError(f"node deployment {deployment!r} not found on the Prefect server", field="node_deployment",
                          hint="run `prefect deploy --name node` from the Testpilot checkout, or set "
                               "node_deployment to one that exists") from None


def run_tag(pipeline_run: str) -> str:
    """The tag every node run of one pipeline run carries."""
    return f"testpilot-run-{pipeline_run}"


def cancel_node_runs(pipeline_run: str) -> list[str]:
    """Cancel the node runs of ``pipeline_run`` that are not over (the pipeline was cancelled or crashed)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    live = [t for t in StateType if t not in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED,
                                               StateType.CANCELLED, StateType.CANCELLING)]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[run_tag(pipeline_run)]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))))
        for run in runs:
            client.set_flow_run_state(run.id, Cancelling(message=f"its pipeline run {pipeline_run} was stopped"),
                                      force=True)
    return [str(r.id) for r in runs]


def cancel_nodes_hook(flow: object, flow_run: object, state: object) -> None:
    """Pipeline hook (cancelled, crashed): its node runs on the work pool are cancelled too."""
    cancel_node_runs(str(getattr(flow_run, "id", "")))


def pool_request(tree: SourceTree, node: str, app: str, shard: int, tests: list[str], env: Environment,
                 run_id: str) -> NodeRequest:
    """What a node run needs: where to clone from, the commit, and the node (a remote env as is)."""
    if not tree.commit:
        raise ConfigError("nodes on a work pool test a commit, not a working tree", field="head",
                          hint="give head a commit (e.g. HEAD), or use execution: threads for WORKTREE")
    return NodeRequest(repo=origin_of(Path(tree.repo)), commit=tree.commit,
                       suite=Path(tree.suite).relative_to(tree.root).as_posix(), node=node, app=app, shard=shard,
                       tests=tests, pool=env.pool, slot=env.slot, env=env if env.transport == "ssh" else None,
                       run_id=run_id)


def stale_after() -> float:
    """Seconds without a heartbeat after which a running node run is dead (three intervals, default 90)."""
    from prefect.settings import get_current_settings

    return get_settings().zombie_after or 3.0 * float(get_current_settings().flows.heartbeat_frequency or 30)


def follow_node(run_id: UUID, stale: float | None = None) -> tuple[NodeResult | None, str]:
    """Wait for a node flow run to end; (its published result, '') or (None, why there is none).

    A run that stopped heartbeating is marked Crashed here. If this wait is interrupted (the pipeline
    is cancelled or killed), the node run is cancelled too."""
    limit = stale or stale_after()
    with get_client(sync_client=True) as client:
        try:
            while True:
                run = client.read_flow_run(run_id)
                if run.state and run.state.is_final():
                    break
                if _silent(client, run, limit):
                    message = (f"node run {run.name} sent no heartbeat for {limit:.0f}s: "
                               "its worker or process is gone (killed?)")
                    client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                    return None, message
                time.sleep(POLL_SECONDS)
        except BaseException:
            client.set_flow_run_state(run_id, Cancelling(message="the pipeline run stopped waiting for it"),
                                      force=True)
            raise
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), key=ArtifactFilterKey(any_=[SHARD_KEY])))
    if found:
        return result_from_markdown(str(found[0].data)), ""
    state = run.state
    return None, (f"node run {run.name} ended {state.name if state else 'without a state'} without results"
                  + (f": {state.message}" if state and state.message else ""))


def _silent(client: Any, run: FlowRun, limit: float) -> bool:
    """A Running (or Pending, i.e. picked up) run silent for ``limit`` seconds."""
    from datetime import timedelta

    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
    from prefect.types._datetime import now

    if not run.state or run.state.type not in (StateType.RUNNING, StateType.PENDING):
        return False
    since = run.state.timestamp.timestamp() if run.state.timestamp else time.time()
    if time.time() - since < limit:
        return False
    beats = client.read_events(filter=EventFilter(
        event=EventNameFilter(name=[HEARTBEAT]), occurred=EventOccurredFilter(since=now("UTC") - timedelta(seconds=limit)),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"])), limit=1)
    return not beats.events


# -- the node flow's own steps, on the worker ------------------------------------------------------------------

@task(name="checkout-node", task_run_name="checkout[{request.commit:.12}]", **TASK_DEFAULTS)
def checkout_node(request: NodeRequest, run_id: str) -> tuple[SourceTree, str]:
    """This worker's clone of the repository (made on first use), and the commit written out for this run."""
    clones = get_settings().home / "clones"
    with clone_lock(clones / "repo"):
        clone = ensure_clone(request.repo, clones)
        tree = prepare_source(clone / request.suite, request.commit, run_folder(run_id) / "tree", repo=str(clone),
                              field="request.suite")
    for note in tree.notes:
        get_run_logger().info("%s", note)
    return tree, str(clone)


@task(name="provision-copy", task_run_name="provision[{request.pool}-{request.slot}]", **TASK_DEFAULTS)
def provision_copy(suite_path: str, request: NodeRequest, run_id: str) -> Environment:
    """This worker's own copy of the pool member the pipeline holds (local pools), with the app installed."""
    acquire, _notes = _request(suite_path, request.pool, [request.app], run_id, request.slot)
    provider = get_provider(request.pool, suite_at(suite_path).environments[request.pool])
    if not isinstance(provider, LocalProvider):
        raise ConfigError(f"pool {request.pool!r} is not local, but the node got no environment",
                          field=f"environments.{request.pool}.provider")
    env = provider.replica(acquire, run_id)
    get_run_logger().info("environment %s ready at %s", env.id, env.workdir)
    return env


def release_copy(suite_path: str, env: Environment) -> None:
    get_provider(env.pool, suite_at(suite_path).environments[env.pool]).release(env)


@task(name="publish-shard", **TASK_DEFAULTS)
def publish_shard(result: NodeResult) -> None:
    """The result, through the Prefect API: the ``testpilot-shard`` artifact of this node run."""
    create_markdown_artifact(result_markdown(result), key=SHARD_KEY,
                             description=f"{result.shard.app}[{result.shard.shard}]: results of this node")
