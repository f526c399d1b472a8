"""Fan-out within a run: spread a run's shard nodes over the pool members it holds.

A run may hold several members (environments) of a pool. Each shard node goes, when it starts, to
the member of its pool with the least expected work still ahead of it (recorded durations of the
nodes running there, minus the time they have already run). Started longest first, which is the
order ``order`` gives, this is LPT scheduling (longest processing time first onto the least-loaded
machine): the members end close together, within 4/3 of the best possible. When a node finishes,
its member is free again at once, so a later node goes where the work really ended; among members
equally free, the one given the least work so far, then the fewest nodes (so every member held is
used, also when recorded durations are 0 s). Members the run
could not get are never part of a FanOut: nothing waits for them.

Pure: plain data in and out, time injected, no Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from testpilot.execution.shards import expected_seconds

M = TypeVar("M")


def node_seconds(tests: list[str], durations: dict[str, float] | None = None) -> float:
    """A shard node's expected duration: its tests' recorded durations (unknown ones at the median)."""
    return sum(expected_seconds(tests, durations).values())


def lpt(expected: Mapping[str, float], members: int) -> dict[str, int]:
    """The static plan: longest node first onto the least-loaded of ``members`` (ties: lowest index)."""
    loads = [0.0] * max(1, members)
    plan: dict[str, int] = {}
    for node in sorted(expected, key=lambda n: (-expected[n], n)):
        i = min(range(len(loads)), key=lambda k: (loads[k], k))
        plan[node] = i
        loads[i] += expected[node]
    return plan


@dataclass
class _Run:
    member: int
    expected: float
    started: float
    finished: float | None = None


class FanOut(Generic[M]):
    """Which member of its pool each node runs on.

    ``members``: pool -> the members this run holds (the first is the one it waited for).
    ``nodes``: node -> (its pool, expected seconds). A node whose pool has no member here cannot be placed.
    """

    def __init__(self, members: Mapping[str, Sequence[M]], nodes: Mapping[str, tuple[str, float]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.members = {pool: list(found) for pool, found in members.items()}
        self.nodes = dict(nodes)
        self.clock = clock
        self.runs: dict[str, _Run] = {}

    def order(self, nodes: Iterable[str]) -> list[str]:
        """``nodes`` longest first (stable among equals), the order to start ready nodes in."""
        listed = list(nodes)
        return sorted(listed, key=lambda n: -self.nodes[n][1] if n in self.nodes else 0.0)

    def load(self, pool: str, now: float | None = None) -> list[float]:
        """Per member of ``pool``: expected seconds of work still ahead of it."""
        now = self.clock() if now is None else now
        loads = [0.0] * len(self.members[pool])
        for node, run in self.runs.items():
            if run.finished is None and self.nodes[node][0] == pool:
                loads[run.member] += max(0.0, run.expected - (now - run.started))
        return loads

    def env_for(self, node: str) -> M:
        """The member ``node`` runs on: the one it started on, else the least-loaded one now (ties: the
        one given the least work so far, then the fewest nodes, so nodes with no recorded time (0 s) still
        spread, then the first)."""
        pool = self.nodes[node][0]
        found = self.members.get(pool)
        if not found:
            raise KeyError(f"node {node!r}: this run holds no member of pool {pool!r}")
        if node in self.runs:
            return found[self.runs[node].member]
        loads, given, count = self.load(pool), [0.0] * len(found), [0] * len(found)
        for started, run in self.runs.items():
            if self.nodes[started][0] == pool:
                given[run.member] += run.expected
                count[run.member] += 1
        return found[min(range(len(found)), key=lambda i: (loads[i], given[i], count[i], i))]

    def started(self, node: str, member: M | None = None) -> M:
        """Record that ``node`` started on ``member`` (default: ``env_for(node)``); returns the member."""
        chosen = self.env_for(node) if member is None else member
        index = next(i for i, m in enumerate(self.members[self.nodes[node][0]]) if m is chosen or m == chosen)
        self.runs[node] = _Run(index, self.nodes[node][1], self.clock())
        return chosen

    def finished(self, node: str) -> None:
        """``node`` is done: its member's load drops at once (it may have ended early or late)."""
        if node in self.runs and self.runs[node].finished is None:
            self.runs[node].finished = self.clock()

    def placed(self) -> dict[str, M]:
        """node -> the member it started on, in start order."""
        return {node: self.members[self.nodes[node][0]][run.member] for node, run in self.runs.items()}

    def by_member(self, key: Callable[[M], str]) -> dict[str, list[str]]:
        """``key(member)`` -> the nodes started on it, for every member held (unused ones: empty)."""
        out: dict[str, list[str]] = {key(m): [] for found in self.members.values() for m in found}
        for node, member in self.placed().items():
            out[key(member)].append(node)
        return out
