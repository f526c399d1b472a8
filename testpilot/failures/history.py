"""Matching clusters across runs. History is plain data (past report clusters, kept in Prefect artifacts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from testpilot.failures.clustering import SimilarityIndex
from testpilot.failures.model import ClusterReport

HISTORY_LIMIT = 2000  # clusters kept in the rolling history; the least recently seen go first
_FIELDS = ("id", "signature", "tokens", "category", "defect_type", "first_seen", "last_seen", "first_run",
           "occurrences", "runs_seen")


def _entry(data: Mapping[str, Any] | ClusterReport) -> dict[str, Any]:
    raw = data.model_dump() if isinstance(data, ClusterReport) else dict(data)
    return {k: raw.get(k) for k in _FIELDS if k in raw}


def match_history(clusters: Sequence[ClusterReport], past: Iterable[Mapping[str, Any]], *, run_id: str,
                  now: str, threshold: float) -> None:
    """Fill first-seen, last-seen, occurrences and runs-seen of this run's clusters from past ones.

    A cluster matches a past one by id (same leading signature), else by token-set similarity at or above
    ``threshold``. Each past cluster is claimed at most once, by its most similar current cluster first.
    """
    entries = [_entry(p) for p in past]
    by_id = {e["id"]: e for e in entries if e.get("id")}
    index = SimilarityIndex(threshold)
    for i, e in enumerate(entries):
        index.add(i, frozenset(e.get("tokens") or ()))
    claimed: set[str] = set()
    for cluster in clusters:
        past_entry = by_id.get(cluster.id)
        how = "id"
        if past_entry is None or past_entry["id"] in claimed:
            found = index.best(frozenset(cluster.tokens))
            past_entry = entries[int(found[0])] if found else None  # type: ignore[call-overload]
            how = f"similar {found[1]:.2f}" if found else ""
        if past_entry is None or past_entry.get("id") in claimed:
            cluster.first_seen, cluster.last_seen, cluster.first_run = now, now, run_id
            cluster.occurrences, cluster.runs_seen, cluster.new, cluster.matched = cluster.count, 1, True, ""
            continue
        claimed.add(past_entry["id"])
        if how != "id":
            cluster.id = past_entry["id"]  # keep the cause's identity, so notifications and issues follow it
        cluster.first_seen = past_entry.get("first_seen") or now
        cluster.first_run = past_entry.get("first_run") or run_id
        cluster.last_seen = now
        cluster.occurrences = int(past_entry.get("occurrences") or 0) + cluster.count
        cluster.runs_seen = int(past_entry.get("runs_seen") or 0) + 1
        cluster.new, cluster.matched = False, how


def updated_history(past: Iterable[Mapping[str, Any]], clusters: Sequence[ClusterReport],
                    limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The rolling history to store after this run: past entries, replaced by this run's matched clusters."""
    merged: dict[str, dict[str, Any]] = {}
    for p in past:
        e = _entry(p)
        if e.get("id"):
            merged[e["id"]] = e
    for c in clusters:
        merged[c.id] = _entry(c)
    ordered = sorted(merged.values(), key=lambda e: (e.get("last_seen") or "", e["id"]), reverse=True)
    return ordered[:limit]


def nearest_known(tokens: frozenset[str], candidates: Sequence[Mapping[str, Any] | ClusterReport],
                  exclude: str = "") -> tuple[dict[str, Any], float] | None:
    """The most similar categorised cluster (this run's or a past one), however low the similarity."""
    entries = [e for e in (_entry(c) for c in candidates)
               if e.get("category") not in (None, "", "unclassified") and e.get("id") != exclude]
    index = SimilarityIndex(1.0)
    for i, e in enumerate(entries):
        index.add(i, frozenset(e.get("tokens") or ()))
    found = index.nearest(tokens)
    if found is None:
        return None
    return entries[int(found[0])], found[1]  # type: ignore[call-overload]
