"""Turn a finished command and its JUnit results into a ShardResult.

A shard that timed out, was aborted, or exited badly without writing results still yields failure
records, so nothing is lost: every selected test that did not report gets an ``error`` result.
"""

from __future__ import annotations

import json
import re

from testpilot.errors import TestpilotError, TestsFailed
from testpilot.execution.local import CommandResult
from testpilot.results import ShardResult, TestResult

RESULT_MARKER = "testpilot-result: "  # the pytest plugin's per-test line (testpilot/pytest_plugin.py)
# Aborts that are the infrastructure's doing (the runner writes "<ErrorType>: <why>"), not the tests'.
_INFRASTRUCTURE = ("InfrastructureError:", "ProvisioningError:", "HostKeyRejected:", "TaskCrashed:", "NodeLost:")

_TYPED = re.compile(r"[A-Z][A-Za-z]+(?:Error|Abort|Exception): ")


def shard_result(*, app: str, shard: int, tests: list[str], results: list[TestResult], outcome: CommandResult,
                 environment: str = "", host: str = "", timeout: float = 0.0) -> ShardResult:
    tail = "\n".join(outcome.tail[-60:])
    missing: list[TestResult] = []
    if outcome.timed_out or outcome.aborted or (not results and outcome.exit_code not in (0, 5)):
        reported = {r.node_id.split("::", 1)[0] for r in results} | {r.node_id for r in results}
        if outcome.timed_out:
            why = f"shard timed out after {timeout:.0f}s"
        elif outcome.aborted:  # "StreamAbort: kernel_panic: <line>" or "InfrastructureError: <why>"
            why = outcome.aborted if _TYPED.match(outcome.aborted) else f"run aborted: {outcome.aborted}"
        else:
            why = f"test command exited with code {outcome.exit_code} and reported no results"
        for test in tests or [f"<{app}>"]:
            if test not in reported:
                missing.append(TestResult(node_id=test, app=app, outcome="error", message=why, stdout=tail,
                                          shard=shard, environment=environment, host=host,
                                          phase="timeout" if outcome.timed_out else "test"))
    return ShardResult(app=app, shard=shard, tests=tests, results=results + missing,
                       exit_code=outcome.exit_code, duration=outcome.duration, timed_out=outcome.timed_out,
                       aborted=outcome.aborted, output_tail=tail, environment=environment, host=host)


class StreamedResults:
    """Per-test outcomes read from the live output (the plugin's marker lines), kept for a run whose
    JUnit file never came back: a dropped link must not turn tests that had passed into errors."""

    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[str, float]] = {}

    def feed(self, line: str) -> str:
        """Record the marker in ``line`` if it holds one; returns the rest of the line, to show in the log
        (pytest's progress dots may precede the marker on the same line)."""
        at = line.find(RESULT_MARKER)
        if at < 0:
            return line
        try:
            data = json.loads(line[at + len(RESULT_MARKER):])
            self.outcomes[str(data["node_id"])] = (str(data["outcome"]), float(data.get("duration", 0.0)))
        except (ValueError, KeyError, TypeError):
            return line
        return line[:at]

    def results(self, *, app: str, shard: int, environment: str = "", host: str = "") -> list[TestResult]:
        """What finished cleanly (passed or skipped); anything else is left to ``shard_result`` to report."""
        return [TestResult(node_id=node, app=app, outcome=outcome, duration=duration,
                           shard=shard, environment=environment, host=host)
                for node, (outcome, duration) in self.outcomes.items() if outcome in ("passed", "skipped")]


def lost_to_infrastructure(shards: list[ShardResult]) -> list[ShardResult]:
    """Shards whose run the infrastructure ended (a dropped link, a crashed node), not their tests."""
    return [s for s in shards if s.aborted.startswith(_INFRASTRUCTURE)]


def run_verdict(shards: list[ShardResult], *, failed: int, total: int, results_dir: str,
                scenarios: tuple[int, int] = (0, 0)) -> TestpilotError | None:
    """The error a finished run ends with: infrastructure (exit 3) when it lost a shard, else test
    failures (exit 1), else none. Lost infrastructure wins: the run could not say whether the code works."""
    lost = lost_to_infrastructure(shards)
    if lost:
        from testpilot.errors import InfrastructureError

        first = lost[0]
        return InfrastructureError(
            f"{len(lost)} shard(s) lost to the infrastructure ({first.app}[{first.shard}] on "
            f"{first.host or first.environment}: {first.aborted[:200]}); {failed} of {total} test(s) did not pass",
            host=first.host, phase="test", hint=f"tests that had passed are kept; see {results_dir}")
    if failed or scenarios[0]:
        return TestsFailed(failed, total, results_dir, scenarios)
    return None
