"""FailureRecord: one failure of any phase (test, fixture, provisioning, seeding, scenario step, timeout)."""

from __future__ import annotations

import re
import traceback as tb
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from pydantic import BaseModel, Field

from testpilot.errors import ExecutionTimeout, InfrastructureError, LockTimeout, TestpilotError
from testpilot.failures.frames import exception_lines, final_exception_type, split_exception
from testpilot.results import Outcome, ShardResult, TestResult

Phase = Literal["collection", "setup", "test", "teardown", "provision", "seed", "scenario", "release", "lock"]
_PHASES = frozenset(get_args(Phase))

_PYTEST_PHASE = re.compile(r'^failed on (?P<phase>setup|teardown) with "(?P<msg>.*?)"?\s*$', re.S)
_MAX_TEXT = 20_000  # keep a record small enough to ship in artifacts; the tail holds the exception


class FailureRecord(BaseModel):
    """One failure with everything the analysis needs. Plain data; safe to serialise."""

    test_id: str = Field(description="Pytest node id, or a step name such as 'provision:web-pool'.")
    app: str = ""
    environment: str = ""
    host: str = ""
    phase: Phase = "test"
    exception_type: str = ""
    message: str = ""
    traceback: str = ""
    output: str = Field(default="", description="Captured stdout/stderr or log lines.")
    duration: float = 0.0
    rerun_outcomes: list[Outcome] = Field(default_factory=list,
                                          description="Outcomes of automatic re-runs, in order.")
    history: list[Outcome] = Field(default_factory=list,
                                   description="The test's outcomes in earlier runs, oldest first.")

    @property
    def test_file(self) -> str:
        return self.test_id.split("::", 1)[0] if "::" in self.test_id else ""


def _tail(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[-_MAX_TEXT:]


def record_from_result(result: TestResult, reruns: Sequence[TestResult | Outcome] = ()) -> FailureRecord:
    """Make a record from a failed (or errored) TestResult and the results of its re-runs."""
    message = result.message
    phase: str = result.phase if result.phase in _PHASES else "test"
    if result.outcome == "error":
        m = _PYTEST_PHASE.match(message)
        if m:
            phase, message = m.group("phase"), m.group("msg")
        elif message.startswith("collection failure") or result.phase == "collection":
            phase = "collection"
    exc_type, text = split_exception(message)
    if not exc_type and message.lstrip().startswith(("assert ", "expect(", "Error: expect(")):
        exc_type = "AssertionError"  # pytest's rewritten asserts and Jest's expect() name no type
        text = message.strip().removeprefix("Error: ")
    if not exc_type:
        exc_type = result.error_type or final_exception_type(result.traceback)
    if phase in ("collection", "setup", "teardown") and not split_exception(message)[0]:
        # "collection failure" or a fixture-lookup listing: the telling line is the last E line.
        lines = exception_lines(result.traceback)
        if lines:
            line_type, text = split_exception(lines[-1])
            exc_type = line_type or exc_type
            text = text if line_type else lines[-1]
    output = "\n".join(part for part in (result.stdout, result.stderr) if part)
    return FailureRecord(
        test_id=result.node_id, app=result.app, environment=result.environment, host=result.host,
        phase=phase,
        exception_type=exc_type, message=_tail(text or message), traceback=_tail(result.traceback),
        output=_tail(output), duration=result.duration,
        rerun_outcomes=[r.outcome if isinstance(r, TestResult) else r for r in reruns])


def record_from_error(error: BaseException, *, test_id: str = "", app: str = "", environment: str = "",
                      host: str = "", phase: Phase | None = None, duration: float = 0.0,
                      output: str = "") -> FailureRecord:
    """Make a record from a raised exception, typically a TestpilotError from provisioning or seeding.

    ``host`` and ``phase`` default to the error's own fields (InfrastructureError carries both).
    """
    err_host = getattr(error, "host", "") if isinstance(error, InfrastructureError) else ""
    err_phase = getattr(error, "phase", "") if isinstance(error, InfrastructureError) else ""
    if phase is None:
        if isinstance(error, LockTimeout):
            phase = "lock"
        elif err_phase in _PHASES:
            phase = err_phase  # type: ignore[assignment]
        elif isinstance(error, ExecutionTimeout):
            phase = "test"
        else:
            phase = "provision" if isinstance(error, InfrastructureError) else "test"
    message = error.message if isinstance(error, TestpilotError) else str(error)
    if isinstance(error, TestpilotError) and error.hint:
        message = f"{message} ({error.hint})"
    trace = "".join(tb.format_exception(type(error), error, error.__traceback__))
    return FailureRecord(
        test_id=test_id or f"{phase}:{environment or host or app or 'run'}", app=app,
        environment=environment, host=host or err_host, phase=phase,
        exception_type=type(error).__name__, message=_tail(message), traceback=_tail(trace),
        output=_tail(output), duration=duration)


def records_from_shard(shard: ShardResult, reruns: Mapping[str, Sequence[TestResult | Outcome]] | None = None,
                       ) -> list[FailureRecord]:
    """Records for a shard's failed tests, plus one for a timeout or stream abort that JUnit cannot show.

    ``reruns`` maps node id -> results of its automatic re-runs.
    """
    reruns = reruns or {}
    records = [record_from_result(r, reruns.get(r.node_id, ())) for r in shard.results if r.failed]
    where = FailureRecord(test_id=f"shard:{shard.app}#{shard.shard}", app=shard.app, environment=shard.environment,
                          host=shard.host, duration=shard.duration, output=_tail(shard.output_tail))
    if shard.timed_out:
        records.append(where.model_copy(update={
            "exception_type": "ExecutionTimeout",
            "message": f"shard {shard.shard} of {shard.app} ran past its timeout after {shard.duration:.0f}s"}))
    if shard.aborted:
        records.append(where.model_copy(update={"exception_type": "StreamAbort", "message": shard.aborted}))
    return records
