"""Turn a finished command and its JUnit results into a ShardResult.

A shard that timed out, was aborted, or exited badly without writing results still yields failure
records, so nothing is lost: every selected test that did not report gets an ``error`` result.
"""

from __future__ import annotations

import re

from testpilot.execution.local import CommandResult
from testpilot.results import ShardResult, TestResult

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
