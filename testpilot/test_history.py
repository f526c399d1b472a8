"""Per-test history from past runs' result tables: last outcomes and durations, first seen failing,
last passed, and the commits since it last passed ("what changed since the last good run").

Input is what the ``testpilot-results-<suite>`` table artifacts hold, one entry per run, newest
first: ``{"run_id", "created", "rows": [{"app", "node_id", "outcome", "duration", "commit"}, ...]}``.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testpilot.results import OUTCOMES, Outcome

_MARK = {"passed": "✓", "failed": "✗", "error": "E", "skipped": "–"}
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class Seen:
    outcome: str
    duration: float
    run_id: str
    commit: str
    created: str


@dataclass
class TestHistory:
    """One test's recent past, newest first (this run included)."""

    __test__ = False
    app: str
    node_id: str
    seen: list[Seen] = field(default_factory=list)
    last_passed: Seen | None = None
    failing_since: Seen | None = None
    changes: list[str] = field(default_factory=list)


def _failed(outcome: str) -> bool:
    return outcome in ("failed", "error")


def histories(tests: Sequence[tuple[str, str]], current: Seen | None, runs: Sequence[Mapping[str, Any]],
              limit: int = 10) -> list[TestHistory]:
    """History of each (app, node id), from ``runs`` (newest first). ``current`` describes this run
    (its outcome field is ignored: every test asked about failed in it)."""
    out = []
    for app, node in tests:
        h = TestHistory(app, node)
        if current:
            h.seen.append(Seen("failed", current.duration, current.run_id, current.commit, current.created))
        for run in runs:
            row = next((r for r in run.get("rows", []) if r.get("app") == app and r.get("node_id") == node), None)
            if row is None:
                continue
            s = Seen(str(row.get("outcome")), float(row.get("duration") or 0), str(run.get("run_id") or ""),
                     str(row.get("commit") or ""), str(run.get("created") or ""))
            h.seen.append(s)
            if h.last_passed is None and s.outcome == "passed":
                h.last_passed = s
        streak = [s for s in _until_pass(h.seen) if _failed(s.outcome)]
        h.failing_since = streak[-1] if streak else None
        h.seen = h.seen[:limit]
        out.append(h)
    return out


def _until_pass(seen: list[Seen]) -> list[Seen]:
    for i, s in enumerate(seen):
        if s.outcome == "passed":
            return seen[:i]
    return seen


def commits_between(repo: Path, good: str, head: str, limit: int = 20) -> list[str]:
    """``git log`` one-liners of the commits after ``good`` up to ``head``; [] when either is unknown."""
    if not (_SHA.match(good) and _SHA.match(head)) or good == head:
        return []
    proc = subprocess.run(["git", "-C", str(repo), "log", f"--max-count={limit}", "--format=%h %an: %s",  # noqa: S603
                           f"{good}..{head}", "--"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _when(s: Seen | None) -> str:
    if s is None:
        return "never (in the runs kept)"
    return f"{s.created[:16].replace('T', ' ')} `{s.commit[:10] or '?'}`"


def history_markdown(items: Sequence[TestHistory], runs_read: int) -> str:
    """The history section: per failing test, its recent outcomes (newest first), since when it fails,
    when it last passed, and the commits since then."""
    if not items:
        return ""
    lines = [f"## History of failing tests (this run and the {runs_read} before it)"]
    for h in items:
        outcomes = " · ".join(f"{_MARK.get(s.outcome, '?')} {s.duration:.2f}s" for s in h.seen)
        lines += ["", f"### {h.app} `{h.node_id}`", "",
                  f"- **last {len(h.seen)} run(s), newest first** {outcomes}",
                  f"- **failing since** {_when(h.failing_since)}",
                  f"- **last passed** {_when(h.last_passed)}"]
        if h.last_passed:
            lines.append("- **changed since it last passed** " + ("" if h.changes else "nothing (same commit)"))
            lines += [f"  - `{c}`" for c in h.changes]
    return "\n".join(lines)


def same_commit_outcomes(tests: Sequence[tuple[str, str]], commit: str, runs: Sequence[Mapping[str, Any]],
                         limit: int = 10) -> dict[str, list[Outcome]]:
    """Each failing test's outcomes in earlier runs of the *same* commit, oldest first, keyed by node id
    (what ``analyse_failures(test_history=...)`` takes). Only the commit under test counts: a test that
    passed on the previous commit and fails on this one changed with the code, it did not flip. A node id
    that two of the tests share (two apps with the same test file) is left out rather than mixed."""
    if not commit:
        return {}
    by_node: dict[str, list[Outcome]] = {}
    shared = {node for node, n in Counter(node for _, node in tests).items() if n > 1}
    for app, node in tests:
        if node in shared:
            continue
        seen: list[Outcome] = [row["outcome"] for run in runs for row in run.get("rows", [])
                               if row.get("commit") == commit and row.get("app") == app
                               and row.get("node_id") == node and row.get("outcome") in OUTCOMES]
        if seen:
            by_node[node] = list(reversed(seen[:limit]))  # runs come newest first
    return by_node

