"""``testpilot ci``: run a deployment for CI, follow it readably, and exit 0/1/2/3 like ``testpilot run``.

``prefect deployment run --watch`` exits 1 for every end that is not Completed and prints raw events.
This command reads the verdict the pipeline publishes (``tasks/verdict.py``) instead, prints state
changes, failed task runs, warnings and the failing tests with their owners, and downloads junit.xml
and report.json from the results storage block, never from the worker's disk.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterLevel,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from tasks.verdict import load_storage, read_verdict
from testpilot.errors import ConfigError, InfrastructureError, TestpilotError
from testpilot.source import caller_commits
from testpilot.verdict import (
    RESULT_FILES,
    VERDICTS,
    failing_tests,
    final_exit,
    parse_parameters,
    write_error_junit,
)

# Prefect's engine logs a failed task or flow again and again; the state lines already say it once.
ENGINE_ECHOES = ("Task run failed with exception", "Task run failed with state", "Finished in state", "Encountered exception during execution",
                 "Engine execution exited with unexpected exception", "Flow run encountered an exception")


class _Follower:
    """Prints what changed since the last poll: the run's state, finished task runs, warnings."""

    def __init__(self, run_id: UUID, out: TextIO) -> None:
        self.run_id, self.out = run_id, out
        self.state = ""
        self.tasks: set[UUID] = set()
        self.logs: set[UUID] = set()

    def say(self, text: str) -> None:
        print(f"{datetime.now():%H:%M:%S} {text}", file=self.out, flush=True)

    def poll(self, client: Any) -> FlowRun:
        run = client.read_flow_run(self.run_id)
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[self.run_id]))
        for task in sorted(client.read_task_runs(flow_run_filter=runs), key=lambda t: str(t.expected_start_time or "")):
            if task.id in self.tasks or not (task.state and task.state.is_final()):
                continue
            self.tasks.add(task.id)
            if not task.state.is_completed():
                self.say(f"  {task.name}: {task.state.name}: {(task.state.message or '').splitlines()[0][:300]}"
                         if task.state.message else f"  {task.name}: {task.state.name}")
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.run_id]),
                                                     level=LogFilterLevel(ge_=30)))
        for log in sorted(logs, key=lambda entry: entry.timestamp):
            if log.id not in self.logs:
                self.logs.add(log.id)
                if log.message.startswith(ENGINE_ECHOES):
                    continue
                self.say(f"  {'error' if log.level >= 40 else 'warning'}: {log.message.splitlines()[0][:300]}")
        state = run.state.name if run.state else ""
        if state != self.state:
            self.state = state
            message = f": {run.state.message}" if run.state and run.state.message else ""
            self.say(f"run {run.name}: {state}{message}")
        return run


def _download(row: dict[str, Any], folder: Path, out: TextIO) -> dict[str, Path]:
    """The run's result files from the storage block its verdict names, into ``folder``."""
    if not row.get("storage"):
        return {}
    storage = load_storage(row["storage"])
    if storage is None:
        print(f"results: storage block {row['storage']!r} is not saved on this Prefect server", file=out)
        return {}
    files = {}
    for name, file in RESULT_FILES.items():
        if row.get(name):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / file).write_bytes(storage.read_path(row[name], _sync=True))
            files[name] = folder / file
    return files


def run_ci(deployment: str, items: list[str], *, results: Path | None, as_json: bool, timeout: float | None = None,
           poll_seconds: float = 2.0, resolve_refs: bool = True) -> int:
    """Trigger ``deployment``, follow it to its end, download its results; return its exit code.
    ``resolve_refs``: send ``base``/``head`` as the commits they name in the current folder's clone.

    An error that ends it early (no API, an unknown deployment or ``-p`` name, ``--timeout``) still leaves a
    junit.xml with one errored case, and the ``--json`` summary, so CI's reporters say why; then it is raised."""
    try:
        return _run_ci(deployment, items, results=results, as_json=as_json, timeout=timeout,
                       poll_seconds=poll_seconds, resolve_refs=resolve_refs)
    except TestpilotError as exc:
        folder = results or _default_results(None)
        write_error_junit(folder / RESULT_FILES["junit"], "", exc.exit_code, str(exc))
        if as_json:
            print(json.dumps({"flow_run_id": "", "flow_run_name": "", "url": "", "deployment": deployment,
                              "parameters": {}, "state": "", "exit_code": exc.exit_code,
                              "verdict": VERDICTS.get(exc.exit_code, "error"), "message": str(exc), "tests": 0,
                              "failed": 0, "flaky": 0, "failing": [],
                              "files": {"junit": str(folder / RESULT_FILES["junit"])}}, indent=2))
        raise


def _run_ci(deployment: str, items: list[str], *, results: Path | None, as_json: bool, timeout: float | None,
            poll_seconds: float, resolve_refs: bool) -> int:
    import httpx

    out = sys.stderr if as_json else sys.stdout
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    api = PREFECT_API_URL.value()
    if not api:
        raise ConfigError("no Prefect API configured", field="PREFECT_API_URL",
                          hint="set PREFECT_API_URL to the server the workers use, e.g. http://host:4200/api")
    try:
        with get_client(sync_client=True) as client:
            try:
                dep = client.read_deployment_by_name(deployment)
            except ObjectNotFound:
                raise ConfigError(f"deployment {deployment!r} not found on {api}", field="--deployment",
                                  hint="run `prefect deploy --all` from the repository root, or name "
                                       "another as flow-name/deployment-name") from None
            params = parse_parameters(items, dep.parameter_openapi_schema or {})
            if resolve_refs:
                params, notes = caller_commits(params, Path.cwd())
                for note in notes:
                    print(note, file=out, flush=True)
            run = client.create_flow_run_from_deployment(dep.id, parameters=params)
            ui = PREFECT_UI_URL.value() or api.removesuffix("/api")
            url = f"{ui}/runs/flow-run/{run.id}"
            print(f"Flow run {run.name} of {deployment}: {url}", file=out, flush=True)
            follower = _Follower(run.id, out)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not (run.state and run.state.is_final()):
                if deadline is not None and time.monotonic() > deadline:
                    raise InfrastructureError(f"run {run.name} still {run.state.name if run.state else 'pending'} "
                                              f"after {timeout:.0f}s; it goes on: {url}", phase="ci",
                                              hint="is a worker polling the deployment's work pool?")
                time.sleep(poll_seconds)
                run = follower.poll(client)
    except httpx.HTTPError as exc:
        raise InfrastructureError(f"Prefect API {api}: {exc}", phase="ci",
                                  hint="check PREFECT_API_URL and that the server is up") from None
    rows = read_verdict(run.id)
    code, message = final_exit(run.state.name or "" if run.state else "", rows)
    folder = results or _default_results(run.id)
    files = _download(rows[0] if rows else {}, folder, out)
    report = json.loads(files["report"].read_text()) if "report" in files else {}
    failing = failing_tests(report)
    if failing:
        print(f"Failing tests ({len(failing)}):", file=out)
        for f in failing:
            print(f"  {f['app']}: {f['test']}  owner: {f['owner']}"
                  + (f"  [{f['category']}]" if f["category"] else ""), file=out)
    if "junit" not in files and code in (2, 3):
        write_error_junit(folder / RESULT_FILES["junit"], run.name, code, message or "no test ran")
        files["junit"] = folder / RESULT_FILES["junit"]
        print("results: the run stored no junit.xml; wrote one with the reason as an errored case", file=out)
    print(f"results: {', '.join(str(p) for p in files.values()) or 'none stored by the run (see its warnings)'}",
          file=out)
    verdict = rows[0] if rows else {}
    if code == 0:
        message = f"{verdict.get('tests', 0)} test(s) passed" + (f", {verdict['flaky']} flaky" if verdict.get("flaky") else "")
    print(f"{'PASSED' if code == 0 else 'FAILED'} (exit {code}): {message}", file=out)
    if as_json:
        print(json.dumps({"flow_run_id": str(run.id), "flow_run_name": run.name, "url": url, "deployment": deployment,
                          "parameters": params, "state": run.state.name if run.state else "", "exit_code": code,
                          "verdict": verdict.get("verdict", ""), "message": message,
                          "tests": verdict.get("tests", 0), "failed": verdict.get("failed", 0),
                          "flaky": verdict.get("flaky", 0), "failing": failing,
                          "files": {name: str(path) for name, path in files.items()}}, indent=2))
    _flush_events()
    return code


def _flush_events() -> None:
    """Send the client's queued events (loading a block emits one) now, not with a warning at exit."""
    import logging

    from prefect.events.worker import EventsWorker

    logging.getLogger("EventsWorker").setLevel(logging.ERROR)  # its "still processing" line is noise here
    EventsWorker.drain_all(timeout=5, at_exit=False)


def _default_results(run_id: UUID | None) -> Path:
    """``$TESTPILOT_HOME/ci-results/<run id>``; before there is a run, ``.../no-run-<time>``."""
    from testpilot.settings import get_settings

    return get_settings().home / "ci-results" / (str(run_id) if run_id else f"no-run-{datetime.now():%Y%m%d-%H%M%S}")
