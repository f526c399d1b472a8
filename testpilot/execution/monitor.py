"""Watching a run's live output for patterns, and tracking the phases of a remote run.

Both are pure: :class:`StreamMonitor` turns one line into events, :class:`PhaseTracker` turns
start/finish calls (with the time passed in) into plain records. The runner does the I/O: it
feeds every streamed line and stops the remote command when an ``abort`` event comes back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from testpilot.errors import ConfigError

Action = Literal["abort", "warn", "progress"]
Stream = Literal["stdout", "stderr", "any"]


class MonitorPattern(BaseModel):
    """One pattern to watch for, and what to do when a line matches it.

    For ``progress`` patterns, a named group ``percent`` (0-100), or ``done`` and ``total``, gives
    the progress; a group ``message`` gives the text shown with it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Short id shown in events and reports, e.g. 'kernel_panic'.")
    regex: str = Field(description="Python regular expression searched in each line.")
    action: Action = Field(description="abort: stop the run as an infrastructure failure; warn; progress.")
    stream: Stream = Field(default="any", description="Which stream to watch.")
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


DEFAULT_PATTERNS: tuple[MonitorPattern, ...] = (
    MonitorPattern(name="kernel_panic", regex=r"Kernel panic", action="abort"),
    MonitorPattern(name="oom", regex=r"Out of memory: Kill|invoked oom-killer|oom-kill:", action="abort"),
    MonitorPattern(name="connection_refused", regex=r"Connection refused", action="warn"),
    MonitorPattern(name="pytest_progress", regex=r"\[\s*(?P<percent>\d{1,3})%\]\s*$", action="progress",
                   stream="stdout"),
)


class MonitorConfig(BaseModel):
    """The suite's stream monitor settings: the defaults above plus custom patterns."""

    model_config = ConfigDict(extra="forbid")
    use_defaults: bool = Field(default=True, description="Include kernel panic, OOM, Connection refused, pytest %.")
    patterns: list[MonitorPattern] = Field(default_factory=list, description="Extra patterns, checked first.")

    def effective_patterns(self) -> list[MonitorPattern]:
        return [*self.patterns, *(DEFAULT_PATTERNS if self.use_defaults else ())]


@dataclass(frozen=True)
class Event:
    """A pattern matched a line."""

    action: Action
    pattern: str
    line: str
    stream: str
    percent: float | None = None
    message: str = ""


class StreamMonitor:
    """Matches lines against patterns; ``feed`` returns the events one line causes.

    A line can match several patterns (say ``warn`` and ``progress``); each gives an event, in
    pattern order. ``aborted`` keeps the first abort so the runner can report it.
    """

    def __init__(self, patterns: Iterable[MonitorPattern] = DEFAULT_PATTERNS) -> None:
        self.patterns: list[MonitorPattern] = list(patterns)
        self._compiled = [(p, re.compile(p.regex, re.IGNORECASE if p.ignore_case else 0))
                          for p in self.patterns]
        self.aborted: Event | None = None

    @classmethod
    def from_config(cls, config: MonitorConfig | None) -> StreamMonitor:
        return cls((config or MonitorConfig()).effective_patterns())

    def feed(self, line: str, stream: str = "stdout") -> list[Event]:
        events: list[Event] = []
        for pattern, regex in self._compiled:
            if pattern.stream != "any" and pattern.stream != stream:
                continue
            match = regex.search(line)
            if match is None:
                continue
            event = Event(pattern.action, pattern.name, line, stream, *_progress(pattern, match))
            events.append(event)
            if event.action == "abort" and self.aborted is None:
                self.aborted = event
        return events


def _progress(pattern: MonitorPattern, match: re.Match[str]) -> tuple[float | None, str]:
    groups = match.groupdict()
    message = groups.get("message") or ""
    if pattern.action != "progress":
        return None, message
    if groups.get("percent") is not None:
        return min(100.0, float(groups["percent"])), message
    if groups.get("done") is not None and groups.get("total"):
        return min(100.0, 100.0 * float(groups["done"]) / float(groups["total"])), message
    return None, message


def patterns_from_settings(raw: Sequence[dict[str, object]], *, file: str = "", field: str = "monitor") -> list[
        MonitorPattern]:
    """Validate patterns given as plain dicts (e.g. from a Block), naming the bad one on error."""
    patterns = []
    for index, item in enumerate(raw):
        try:
            patterns.append(MonitorPattern.model_validate(item))
        except ValueError as exc:
            raise ConfigError(f"invalid monitor pattern: {exc}", file=file, field=f"{field}[{index}]",
                              hint="each pattern needs name, regex and action (abort, warn or progress)"
                              ) from exc
    return patterns


# ----------------------------------------------------------------------------------- phases
PHASES: tuple[str, ...] = ("provision", "install", "reboot", "test", "report")
PhaseStatus = Literal["pending", "running", "passed", "failed", "skipped"]


class PhaseRecord(BaseModel):
    name: str
    status: PhaseStatus = "pending"
    started: float | None = None
    ended: float | None = None
    detail: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


class PhaseTracker:
    """The phases of one remote run (seed 001: provision, install, reboot, test, report).

    Times are passed in (``now``), so the tracker is pure. Starting a phase finishes a still
    running one as passed; an unknown phase name is appended, so apps can add their own.
    """

    def __init__(self, phases: Sequence[str] = PHASES) -> None:
        self._records: dict[str, PhaseRecord] = {name: PhaseRecord(name=name) for name in phases}

    @property
    def records(self) -> list[PhaseRecord]:
        return [record.model_copy() for record in self._records.values()]

    @property
    def current(self) -> str | None:
        return next((r.name for r in self._records.values() if r.status == "running"), None)

    def start(self, name: str, now: float, detail: str = "") -> PhaseRecord:
        running = self.current
        if running is not None and running != name:
            self.finish(running, now)
        record = self._records.setdefault(name, PhaseRecord(name=name))
        record.status, record.started, record.ended, record.detail = "running", now, None, detail
        return record.model_copy()

    def finish(self, name: str, now: float, ok: bool = True, detail: str = "") -> PhaseRecord:
        record = self._records.get(name)
        if record is None or record.status != "running":
            raise ValueError(f"phase {name!r} is not running (phases: {self.summary()})")
        record.status = "passed" if ok else "failed"
        record.ended = now
        record.detail = detail or record.detail
        return record.model_copy()

    def skip(self, name: str, detail: str = "") -> PhaseRecord:
        record = self._records.setdefault(name, PhaseRecord(name=name))
        record.status, record.detail = "skipped", detail
        return record.model_copy()

    def fail_current(self, now: float, detail: str) -> PhaseRecord | None:
        """Mark whatever is running as failed (e.g. on an abort); None if nothing runs."""
        running = self.current
        return self.finish(running, now, ok=False, detail=detail) if running else None

    def summary(self) -> str:
        return ", ".join(f"{r.name}={r.status}" for r in self._records.values())

    def table(self) -> list[dict[str, str]]:
        """Rows for a table artifact: phase, status, seconds, detail."""
        rows = []
        for record in self._records.values():
            seconds = "" if record.duration is None else f"{record.duration:.1f}"
            rows.append({"phase": record.name, "status": record.status, "seconds": seconds,
                         "detail": record.detail})
        return rows

    def markdown(self) -> str:
        lines = ["| phase | status | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {r['phase']} | {r['status']} | {r['seconds']} | {r['detail'].replace('|', '/')} |"
                  for r in self.table()]
        return "\n".join(lines)
