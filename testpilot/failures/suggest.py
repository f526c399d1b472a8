"""Suggested causes with evidence: changed files in the traceback, failing hosts, per-category hints."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from testpilot.failures.frames import Frame, parse_frames


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggested cause. ``kind``: ``changed_file``, ``host`` or ``hint``."""

    kind: str
    text: str
    file: str = ""
    line: int | None = None
    host: str = ""
    rate: float | None = None


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p and p != "."]


def same_file(frame_path: str, repo_path: str) -> bool:
    """Whether a traceback path and a repository path name one file: one is a suffix of the other.

    Tracebacks print absolute or app-relative paths, diffs print repository-relative ones. At least two
    trailing parts must agree, so ``__init__.py`` in one package does not match another's.
    """
    a, b = _parts(frame_path), _parts(repo_path)
    n = min(len(a), len(b))
    if n == 0 or a[-n:] != b[-n:]:
        return False
    return n >= 2 or len(a) == len(b) == 1


def changed_file_suspects(traceback: str, changed_files: Sequence[str],
                          changed_lines: Mapping[str, Sequence[int]] | None = None) -> list[Suggestion]:
    """Frames in files changed by this run's diff, innermost first, as "likely cause" suggestions.

    A frame on a line the diff touched ranks above one elsewhere in a changed file.
    """
    if not changed_files:
        return []
    frames: list[Frame] = [f for f in parse_frames(traceback) if not f.is_library]
    exact: list[Suggestion] = []
    loose: list[Suggestion] = []
    seen: set[tuple[str, int]] = set()
    for frame in reversed(frames):
        for changed in changed_files:
            if not same_file(frame.path, changed) or (changed, frame.line) in seen:
                continue
            seen.add((changed, frame.line))
            lines = (changed_lines or {}).get(changed)
            if lines and frame.line in set(lines):
                exact.append(Suggestion("changed_file", f"likely cause: {changed}:{frame.line}, "
                                        "line changed in this run", changed, frame.line))
            else:
                loose.append(Suggestion("changed_file", f"likely cause: {changed}:{frame.line}, "
                                        "changed in this run", changed, frame.line))
    return exact + loose


class HostRun(BaseModel):
    """One run on one host, as kept in run history: did it have a system (infrastructure) failure?"""

    host: str
    run_id: str = ""
    system_failure: bool = False


@dataclass(frozen=True, slots=True)
class HostStats:
    host: str
    runs: int
    system_failures: int
    last_failed: bool = False

    @property
    def rate(self) -> float:
        return self.system_failures / self.runs if self.runs else 0.0


def host_stats(history: Sequence[HostRun], window: int = 10) -> dict[str, HostStats]:
    """Per host, its last ``window`` runs (history is oldest first) and how many had system failures."""
    per_host: dict[str, list[bool]] = defaultdict(list)
    for run in history:
        if run.host:
            per_host[run.host].append(run.system_failure)
    return {host: HostStats(host, len(runs[-window:]), sum(runs[-window:]), runs[-1])
            for host, runs in per_host.items()}


def is_dirty(stats: HostStats, *, min_runs: int = 3, rate: float = 0.5) -> bool:
    """A host keeps failing: enough recent runs, and system failures in at least ``rate`` of them.

    The latest run must have failed too, so a host that recovered is not condemned by its past.
    """
    return stats.runs >= min_runs and stats.rate >= rate and stats.last_failed


def host_suggestion(environment: str, stats: HostStats | None, dirty: bool) -> Suggestion:
    host = stats.host if stats else ""
    where = ", ".join(p for p in (f"environment {environment}" if environment else "",
                                  f"host {host}" if host else "") if p) or "the environment"
    if stats is None or stats.runs == 0:
        return Suggestion("host", f"system failure on {where}", host=host)
    text = (f"system failure on {where}: {stats.system_failures} of its last {stats.runs} runs "
            f"had system failures ({stats.rate:.0%})")
    if dirty:
        text += "; marked dirty, rebuild or replace it"
    return Suggestion("host", text, host=host, rate=round(stats.rate, 3))
