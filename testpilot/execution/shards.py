"""Split tests into balanced shards.

Longest-processing-time-first greedy: sort by known duration (unknown ones get the median of the
known ones) and give each test to the currently lightest shard. It is within 4/3 of optimal, and
with no durations it degrades to a round robin by count.
"""

from __future__ import annotations

import heapq
import statistics


def split_shards(tests: list[str], shards: int, durations: dict[str, float] | None = None) -> list[list[str]]:
    """Return up to ``shards`` non-empty lists covering ``tests``, balanced by duration."""
    if not tests:
        return []
    shards = max(1, min(shards, len(tests)))
    seconds = expected_seconds(tests, durations)
    weighted = sorted(tests, key=lambda t: (-seconds[t], t))
    heap = [(0.0, i) for i in range(shards)]
    buckets: list[list[str]] = [[] for _ in range(shards)]
    for test in weighted:
        load, i = heapq.heappop(heap)
        buckets[i].append(test)
        heapq.heappush(heap, (load + seconds[test], i))
    return [sorted(b) for b in buckets if b]


def expected_seconds(tests: list[str], durations: dict[str, float] | None = None) -> dict[str, float]:
    """Each test's recorded duration; one without a record gets the median of the known ones (else 1 s)."""
    durations = durations or {}
    known = [durations[t] for t in tests if t in durations]
    default = statistics.median(known) if known else 1.0
    return {t: durations.get(t, default) for t in tests}


def file_durations(durations: dict[str, float]) -> dict[str, float]:
    """Sum node-id durations up to their test file, for selections made of files."""
    totals: dict[str, float] = {}
    for node_id, seconds in durations.items():
        path = node_id.split("::", 1)[0]
        totals[path] = totals.get(path, 0.0) + seconds
    return totals
