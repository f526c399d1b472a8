"""What `testpilot ci` reads back from a run: the verdict artifact and the result files in shared storage.

A worker on another machine shares only the Prefect API and storage blocks with CI, so junit.xml and
report.json go to a storage block (``TESTPILOT_RESULTS_STORAGE``, a ``type/name`` block slug; default
the ``LocalFileSystem`` ``testpilot-results`` that ``deployments.setup`` saves; any fsspec-backed
``RemoteFileSystem`` or S3/GCS/Azure block works) and the verdict artifact records their keys.
Files in storage, not in the artifact: a junit.xml with tracebacks of thousands of tests is megabytes,
which would bloat every artifact listing in the UI and the server's database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.logging import get_run_logger

from testpilot.settings import get_settings
from testpilot.verdict import RESULT_FILES, exit_code_of, verdict_row

VERDICT_KEY = "testpilot-verdict"


def load_storage(slug: str) -> Any | None:
    """The storage block named ``type/name``, or None when it is not saved."""
    from prefect.blocks.core import Block

    try:
        return Block.load(slug, _sync=True)  # type: ignore[call-arg]  # async_dispatch's switch
    except ValueError:
        return None


def store_results(folder: Path, run_id: str, in_deployment: bool) -> dict[str, str]:
    """Copy the run's result files to the results storage block; their keys, or {} without a block."""
    slug = get_settings().results_storage
    storage = load_storage(slug)
    if storage is None:
        if in_deployment:  # only CI reads them back; a local `testpilot run` has them on disk
            get_run_logger().warning(f"results not stored: no block {slug!r} (run `python -m deployments.setup` "
                                     "or set TESTPILOT_RESULTS_STORAGE); `testpilot ci` cannot download them")
        return {}
    stored = {"storage": slug}
    try:
        for name, file in RESULT_FILES.items():
            if (folder / file).exists():
                storage.write_path(f"{run_id}/{file}", (folder / file).read_bytes(), _sync=True)
                stored[name] = f"{run_id}/{file}"
    except Exception as exc:  # the verdict still counts; CI is told the files are missing
        get_run_logger().warning(f"results not stored in {slug!r}: {type(exc).__name__}: {exc}")
    return stored


def publish_verdict(flow_run_id: UUID | str, row: dict[str, Any]) -> None:
    """The verdict as a one-row table artifact of the flow run (works from hooks, which have no run context);
    JSON text like `create_table_artifact` stores, so the UI shows it as a table."""
    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(key=VERDICT_KEY, type="table", data=json.dumps([row]), flow_run_id=UUID(str(flow_run_id)),
                                              description=f"Verdict for CI: exit code {row['exit_code']}"))


def read_verdict(flow_run_id: UUID | str) -> list[dict[str, Any]]:
    """The run's verdict rows, newest first ([] when it published none)."""
    from tasks.reports import _rows  # reports imports this module

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[VERDICT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))])),
            sort=ArtifactSort.CREATED_DESC)
    return [row for a in artifacts for row in _rows(a.data)]


def verdict_hook(flow: object, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed hook: the verdict of a run that raised (bad ref: 2, unreachable host: 3)."""
    if read_verdict(flow_run.id):  # the flow published it itself (tests failed)
        return
    try:
        error = state.result(raise_on_failure=False) if state.is_failed() else None
    except Exception:  # the exception could not be read back; the state's message still says what happened
        error = None
    code = exit_code_of(error) if isinstance(error, BaseException) else 3
    message = str(error) if isinstance(error, BaseException) else f"run {state.name}: {state.message or ''}"
    publish_verdict(flow_run.id, verdict_row(code, message))
