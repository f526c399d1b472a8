"""Clean-up that asks Prefect whether runs are over: ``testpilot data gc`` and the failures lookup."""

from __future__ import annotations

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
    from tasks.failures import section_from_markdown

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
