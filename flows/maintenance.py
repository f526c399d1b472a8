"""Clean-up that asks Prefect whether runs are over: ``testpilot data gc``, the reaper, the failures lookup.

A run killed with ``kill -9`` stays Running in Prefect: nothing is left to report its end. Every flow
run's engine emits ``prefect.flow-run.heartbeat`` events (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, which
the CLI and the deployments set to 30 s); :func:`crash_zombies` marks a Running pipeline run Crashed
once it has been silent for three intervals. From then on it is "over" for every sweep: the reaper
removes its VMs, ``data gc`` its databases, :func:`sweep_dead_runs` its folders and services.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.exceptions import ObjectNotFound

from testpilot.errors import ConfigError


def run_is_finished(run_id: str) -> bool:
    """True when Prefect says the flow run reached a final state, or has no such run at all."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except ObjectNotFound:
            return True
    return bool(run.state and run.state.is_final())


def failures_of_run(run_id: str) -> dict[str, Any]:
    """The failure report section a pipeline run stored as its ``testpilot-failures-*`` artifact."""
    from testpilot.failures.report import section_from_markdown

    try:
        flow_run = UUID(run_id)
    except ValueError:
        raise ConfigError(f"{run_id!r} is not a flow run id", field="--run",
                          hint="copy the id from `prefect flow-run ls` or the run's URL") from None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run]),
            key=ArtifactFilterKey(like_="testpilot-failures-")))
    if not found:
        raise ConfigError(f"flow run {run_id} has no failure report", field="--run",
                          hint="it passed, or it is not a Testpilot pipeline run")
    return section_from_markdown(str(found[0].data))


PIPELINE_FLOW = "testpilot-pipeline"
HEARTBEAT = "prefect.flow-run.heartbeat"


def zombie_threshold() -> float:
    """Seconds of silence that prove a run dead: the setting, else three heartbeat intervals."""
    from prefect.settings import get_current_settings

    from testpilot.settings import get_settings

    configured = get_settings().zombie_after
    return configured or 3.0 * float(get_current_settings().flows.heartbeat_frequency or 180)


def crash_zombies(stale_after: float | None = None) -> list[str]:
    """Mark Crashed every Running pipeline run whose last heartbeat (or start) is older than ``stale_after``."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
    from prefect.states import Crashed
    from prefect.types._datetime import now

    limit = stale_after or zombie_threshold()
    crashed = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PIPELINE_FLOW])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING]))))
        for run in runs:
            since = now("UTC") - timedelta(seconds=limit)
            beats = client.read_events(filter=EventFilter(
                event=EventNameFilter(name=[HEARTBEAT]), occurred=EventOccurredFilter(since=since),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"])), limit=1)
            started = run.start_time.timestamp() if run.start_time else time.time()
            if beats.events or time.time() - started < limit:
                continue
            client.set_flow_run_state(run.id, Crashed(
                message=f"no heartbeat for {limit:.0f}s: the process running it is gone (killed?); "
                        "its environments, data and services are swept"), force=True)
            crashed.append(str(run.id))
    return crashed


def live_runs() -> set[str]:
    """Ids of the flow runs Prefect does not consider over (after the zombies were marked Crashed)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    alive = [t for t in StateType if t not in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED,
                                                StateType.CANCELLED)]
    found: set[str] = set()
    with get_client(sync_client=True) as client:
        while True:  # the API hands out at most 200 a page
            page = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=alive))), limit=200, offset=len(found))
            found |= {str(r.id) for r in page}
            if len(page) < 200:
                return found


def sweep_dead_runs(stale_after: float | None = None) -> dict[str, list[str]]:
    """Declare silent runs Crashed, then remove the folders and stop the services of every run that is over."""
    from testpilot.environments.leftovers import sweep_leftovers
    from testpilot.settings import get_settings

    crashed = crash_zombies(stale_after)
    return {"crashed": crashed, "removed": sweep_leftovers(get_settings().home, live_runs())}


def prune_pool_limits(idle: timedelta = timedelta(days=7), prefix: str = "testpilot-pool-") -> list[str]:
    """Delete the pools' global concurrency limits nobody holds and nobody has touched for ``idle``: every
    pool name ever used would otherwise leave its limits forever. A pool in use gets its limit back on
    its next run (``ensure_limit``)."""
    from prefect.types._datetime import now

    cutoff = now("UTC") - idle
    removed = []
    with get_client(sync_client=True) as client:
        limits: list[Any] = []
        while not limits or len(limits) % 200 == 0:  # the API hands out at most 200 a page
            page = client.read_global_concurrency_limits(limit=200, offset=len(limits))
            if not page:
                break
            limits += page
        for limit in limits:
            touched = limit.updated or limit.created
            if limit.name.startswith(prefix) and limit.active_slots == 0 and touched is not None \
                    and touched < cutoff:
                client.delete_global_concurrency_limit_by_name(limit.name)
                removed.append(limit.name)
    return removed
