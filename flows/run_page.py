"""Helpers the pipeline flow uses to make its run page readable: tags, live progress per node, and the
inputs and publication of the run summary. Kept out of ``flows/pipeline.py`` so that stays composition."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture, as_completed

from tasks.reports import set_progress
from testpilot.environments.base import Environment
from testpilot.suite import Suite


def ui_url() -> str:
    from prefect.settings import PREFECT_UI_URL

    return str(PREFECT_UI_URL.value() or "").rstrip("/")


def run_url() -> str:
    """This flow run's page in the UI ('' without a UI URL or outside a flow run)."""
    from prefect.runtime import flow_run

    ui = ui_url()
    return f"{ui}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else ""


def node_tags(config: Suite, app: str, head_commit: str) -> list[str]:
    """A node's task-run tags: suite, app, owners, pool, commit."""
    tags = [f"suite:{config.name}", f"app:{app}", *(f"owner:{o}" for o in config.apps[app].owners),
            f"pool:{config.environment_for(app)}"]
    return tags + ([f"commit:{head_commit[:10]}"] if head_commit else [])


class NodeProgress:
    """Moves the progress artifact as each node ends: a node that ran when ``wait_any`` sees it finish, a
    skipped or cancelled one when it is started (``run_dag`` never waits for those)."""

    def __init__(self, progress: UUID, name: str, total: int) -> None:
        self.progress, self.name, self.total, self.done = progress, name, total, 0

    def ended(self, state: str) -> None:
        self.done += 1
        set_progress(self.progress, 25 + 65 * self.done / max(1, self.total),
                     f"{self.name}: running, {self.done} of {self.total} node(s) done (last: {state})")

    def wait_any(self, futures: list[PrefectFuture[Any]]) -> PrefectFuture[Any]:
        """``wait_any`` for ``run_dag``."""
        finished = next(as_completed(futures))
        finished.wait()
        self.ended(finished.state.name or "")
        return finished


def summary_view(config: Suite, envs: list[Environment], lock_wait: float, handles: dict[str, PrefectFuture[Any]],
                 apps_of: dict[str, tuple[str, int]], states: dict[str, str], reasons: dict[str, str],
                 wanted: list[str]) -> dict[str, Any]:
    """Inputs of the summary beyond results: environments, log links, not-run reasons, data flows."""
    ui = ui_url()
    logs = {apps_of[n]: f"{ui}/runs/task-run/{f.task_run_id}" for n, f in handles.items() if n in apps_of}
    return {
        "envs": [{"pool": e.pool, "id": e.id, "host": e.host, "provider": e.provider, "lock_wait": lock_wait,
                  "prepared": ("fresh folder" if e.provider == "local" else "reset to baseline")
                  + (", now dirty" if e.dirty else "")} for e in envs],
        "logs": logs,
        "not_run": {n: reasons.get(n, "") for n, s in states.items() if s in ("Skipped", "Cancelled")},
        "data_flows": {name: [(key, f.source, f.target) for key, f in config.scenarios[name].data_flow.items()]
                       for name in wanted},
    }


def publish_summary(markdown: str, verdict_line: str) -> None:
    """Created by the flow itself, not a task: the UI lists a flow run's own artifacts before its tasks'."""
    create_markdown_artifact(markdown, key="testpilot-summary", description=verdict_line[:500])
