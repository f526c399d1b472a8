"""One exception root for Testpilot, with structured subclasses.

Routing and the CLI match on the type and fields, never on message text. Each error carries a
``hint`` telling the user what to do, and the CLI maps the class to an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TestpilotError(Exception):
    """Root of every error Testpilot raises on purpose."""

    __test__ = False  # keep pytest from collecting classes named Test*
    exit_code = 3

    def __init__(self, message: str, *, hint: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(TestpilotError):
    """The suite file, a block or an argument is wrong. ``location`` is ``file:line field``."""

    exit_code = 2

    def __init__(self, message: str, *, file: str = "", line: int | None = None, field: str = "",
                 hint: str = "") -> None:
        super().__init__(message, hint=hint, file=file, line=line, field=field)
        self.file, self.line, self.field = file, line, field

    @property
    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            where = f"{where} {self.field}" if where else self.field
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text


class GitError(ConfigError):
    """A git ref or repository the user named cannot be used."""


class InfrastructureError(TestpilotError):
    """An environment, host or API failed; not the product's fault."""

    exit_code = 3

    def __init__(self, message: str, *, host: str = "", phase: str = "", hint: str = "",
                 **details: Any) -> None:
        super().__init__(message, hint=hint, host=host, phase=phase, **details)
        self.host, self.phase = host, phase


class ProvisioningError(InfrastructureError):
    """Creating, starting or resetting an environment failed."""


class LockTimeout(InfrastructureError):
    """A pool's concurrency slot could not be had in time. ``holders`` names who has it."""

    def __init__(self, message: str, *, pool: str, holders: list[str], timeout: float) -> None:
        super().__init__(message, hint="wait for the holders to finish, or raise the pool size",
                         pool=pool, holders=holders, timeout=timeout)
        self.pool, self.holders, self.timeout = pool, holders, timeout


class StreamAbort(InfrastructureError):
    """An abort pattern matched the live output of a run."""

    def __init__(self, message: str, *, pattern: str, line: str, host: str = "") -> None:
        super().__init__(message, host=host, phase="test", pattern=pattern, line=line)
        self.pattern, self.line = pattern, line


class ExecutionTimeout(InfrastructureError):
    """A shard or command ran past its timeout."""


@dataclass
class Diagnostics:
    """What was seen while waiting for something; attached to timeout errors."""

    waited_seconds: float = 0.0
    observations: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if not self.observations or self.observations[-1] != text:
            self.observations.append(text)

    def summary(self, last: int = 5) -> str:
        seen = "; ".join(self.observations[-last:]) or "nothing"
        return f"after {self.waited_seconds:.1f}s, last seen: {seen}"


class TestsFailed(TestpilotError):
    """The run completed and some selected tests failed (exit code 1)."""

    exit_code = 1

    def __init__(self, failed: int, total: int, results_dir: str = "", scenarios: tuple[int, int] = (0, 0)) -> None:
        """``failed``/``total``: tests; ``scenarios``: (failed, run) scenarios, said apart so the counts
        match the run's summary line."""
        text = f"{failed} of {total} test(s) failed"
        if scenarios[0]:
            text = (text + ", " if failed else "") + f"{scenarios[0]} of {scenarios[1]} scenario(s) failed"
        super().__init__(text, hint=f"see {results_dir}" if results_dir else "", failed=failed, total=total)
        self.failed, self.total, self.results_dir = failed + scenarios[0], total + scenarios[1], results_dir
