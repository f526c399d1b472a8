"""What the pipeline does when it is interrupted (SIGINT, SIGTERM, a cancel): stop, wait, keep results.

Order matters. First every command of the run is stopped (local process groups, remote process
groups over SSH) and its SSH connections are fenced, so no node thread can reconnect and re-run
on a machine; then the node threads are given a moment to finish (they return at once once their
command is gone); only then are the environments handed back. The CLI reads ``LAST`` to say
whether the environments really were torn down.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect.futures import PrefectFuture

from tasks.environments import release_all, stop_commands, teardown
from testpilot.environments.base import Environment
from testpilot.results import ShardResult

logger = logging.getLogger("testpilot.teardown")
NODE_GRACE = 30.0  # seconds the node threads get to return once their commands are stopped


@dataclass
class TeardownOutcome:
    """What the last teardown of this process did (read by the CLI after an interruption)."""

    environments: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    error: str = ""
    stopped: int = 0
    still_running: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.error and set(self.released) >= set(self.environments)


LAST: TeardownOutcome | None = None


def signal_name(exc: BaseException) -> str:
    """``SIGINT`` for Ctrl-C, ``SIGTERM`` for Prefect's TerminationSignal, else the exception's type."""
    number = getattr(exc, "signal", signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None)
    return signal.Signals(number).name if number else type(exc).__name__


def stop_and_release(suite: str, envs: list[Environment], nodes: list[PrefectFuture[Any]],
                     interrupted: bool, grace: float = NODE_GRACE) -> TeardownOutcome:
    """Stop the run's commands, wait for its node threads, then hand every environment back."""
    global LAST
    outcome = LAST = TeardownOutcome(environments=[e.id for e in envs])
    outcome.stopped = stop_commands(envs)
    if interrupted:  # its commands were killed half way: reset before anyone reuses it
        envs = [e.model_copy(update={"dirty": True}) for e in envs]
    deadline = time.monotonic() + grace
    for future in nodes:
        future.wait(timeout=max(0.0, deadline - time.monotonic()))
    outcome.still_running = [str(f.task_run_id) for f in nodes if f.state and not f.state.is_final()]
    if outcome.still_running:
        logger.error("%d node(s) did not return within %.0fs; their commands were stopped and their "
                     "connections fenced", len(outcome.still_running), grace)
    release: Callable[[str, list[Environment]], list[str]] = release_all if interrupted else teardown
    try:
        outcome.released = release(suite, envs)
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        if release is teardown:
            outcome.released = release_all(suite, envs)  # plain function: works while the engine unwinds
            outcome.error = ""
        else:
            raise
    return outcome


def finished_shards(nodes: list[PrefectFuture[Any]]) -> list[ShardResult]:
    """The results the node futures already hold (a node stopped by the interruption included)."""
    shards = []
    for future in nodes:
        if future.state and future.state.is_final():
            data = future.result(raise_on_failure=False)
            if isinstance(data, ShardResult):
                shards.append(data)
    return shards


def keep_results(write: Callable[[], object]) -> None:
    """Write the partial report; a failure here is logged, never raised over the interruption itself."""
    try:
        write()
    except Exception:  # noqa: BLE001 - the interruption is what the caller must see
        logger.exception("could not write the results of the interrupted run")


def interrupted_message(exc: BaseException, outcome: TeardownOutcome | None) -> str:
    """What the CLI prints after an interruption: only say "torn down" when it was."""
    head = f"testpilot: interrupted ({signal_name(exc)})"
    if outcome is None:
        return f"{head} before any environment was provisioned"
    if not outcome.complete:
        left = sorted(set(outcome.environments) - set(outcome.released))
        return (f"{head}; teardown incomplete: {', '.join(left) or 'some environments'} not handed back"
                f"{': ' + outcome.error if outcome.error else ''} (the reaper removes them; "
                "run the testpilot-reaper deployment to do it now)")
    stopped = f"stopped {outcome.stopped} running command(s); " if outcome.stopped else ""
    return f"{head}; {stopped}{len(outcome.released)} environment(s) were torn down"
