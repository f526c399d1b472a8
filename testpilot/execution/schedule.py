"""Run a dependency graph of nodes with bounded parallelism, skipping dependents of failures.

Pure scheduling: the caller supplies ``start`` (begin a node, or record it as skipped or cancelled
when given a reason) and ``wait_any`` (block until one started node finishes), so this runs the
same over Prefect futures as over plain threads in a unit test.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

H = TypeVar("H", bound=Hashable)

FAILED = frozenset({"failed", "crashed", "error", "timedout"})
NOT_RUN = frozenset({"skipped", "cancelled", "blocked"})


@dataclass
class Decision:
    """What to do with a node whose dependencies are all final."""

    action: str  # "run", "skip" or "cancel"
    reason: str = ""


@dataclass
class Outcome(Generic[H]):
    states: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    handles: dict[str, H] = field(default_factory=dict)


def decide(node: str, deps: list[str], states: Mapping[str, str], reasons: Mapping[str, str],
           failed_any: bool, fail_fast: bool) -> Decision:
    if fail_fast and failed_any:
        return Decision("cancel", "cancelled: fail_fast after an earlier failure")
    for dep in deps:
        if states[dep].lower() in FAILED:
            return Decision("skip", f"dependency {dep} failed")
    for dep in deps:
        if states[dep].lower() in NOT_RUN:
            return Decision("skip", reasons.get(dep) or f"dependency {dep} {states[dep].lower()}")
    return Decision("run")


def run_dag(deps: Mapping[str, list[str]], start: Callable[[str, Decision], H],
            wait_any: Callable[[list[H]], H], state_of: Callable[[H], tuple[str, str]], *,
            max_parallel: int = 4, fail_fast: bool = False) -> Outcome[H]:
    """Start every node once its dependencies are final; at most ``max_parallel`` run at a time.

    ``deps`` must list every node (in any order) with the nodes it waits for. ``state_of`` returns a
    finished node's (state name, message). Skipped and cancelled nodes never occupy a slot.
    """
    unknown = {d for ds in deps.values() for d in ds} - set(deps)
    if unknown:
        raise ValueError(f"dependencies on unknown nodes: {sorted(unknown)}")
    out: Outcome[H] = Outcome()
    running: dict[H, str] = {}
    waiting = list(deps)
    while waiting or running:
        failed_any = any(s.lower() in FAILED for s in out.states.values())
        progressed = True
        while progressed:
            progressed = False
            for node in list(waiting):
                if not all(d in out.states for d in deps[node]):
                    continue
                decision = decide(node, deps[node], out.states, out.reasons, failed_any, fail_fast)
                if decision.action == "run" and len(running) >= max_parallel:
                    continue
                waiting.remove(node)
                handle = start(node, decision)
                out.handles[node] = handle
                if decision.action == "run":
                    running[handle] = node
                else:
                    out.states[node] = "Skipped" if decision.action == "skip" else "Cancelled"
                    out.reasons[node] = decision.reason
                    progressed = True
        if not running:
            if waiting:
                raise ValueError(f"dependency cycle among {sorted(waiting)}")
            break
        finished = wait_any(list(running))
        node = running.pop(finished)
        out.states[node], message = state_of(finished)
        if message:
            out.reasons[node] = message
    return out
