"""Remove cloud resources nobody owns any more: expired, or left behind by a run that is over.

The decision (``select_for_reaping``) is pure over a provider's listing; ``reap`` does the I/O
through any provider with ``list_owned()`` and ``destroy_owned()``. Resources without Testpilot's
ownership labels or tags are never listed, so they are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from testpilot.environments.cloud import IDLE
from testpilot.errors import TestpilotError

UNTAGGED = "untagged:"  # run id of a VM cloned but never tagged: "untagged:<pool>:<slot>", see list_owned


@dataclass(frozen=True)
class OwnedResource:
    """One VM or server a provider created, with the ownership read back from its labels/tags."""

    provider: str
    id: str
    name: str
    pool: str
    run_id: str
    expires_at: int | None


@dataclass(frozen=True)
class ReapDecision:
    resource: OwnedResource
    reason: str


class Reapable(Protocol):
    def list_owned(self) -> list[OwnedResource]: ...
    def destroy_owned(self, resource: OwnedResource) -> None: ...


def select_for_reaping(resources: list[OwnedResource], *, now: float,
                       is_run_finished: Callable[[str], bool]) -> list[ReapDecision]:
    """Which resources to destroy, and why. An idle (released) pool member goes only when it expires."""
    chosen = []
    for resource in resources:
        if resource.expires_at is not None and resource.expires_at <= now:
            chosen.append(ReapDecision(resource, f"expired at {resource.expires_at}"))
        elif resource.run_id not in ("", IDLE) and is_run_finished(resource.run_id):
            chosen.append(ReapDecision(resource, f"owning run {resource.run_id} is over"))
        elif resource.expires_at is None and resource.run_id in ("", IDLE):
            chosen.append(ReapDecision(resource, "no expiry and no owning run"))
    return chosen


def reap(provider: Reapable, *, is_run_finished: Callable[[str], bool], now: float | None = None,
         dry_run: bool = False, on_outcome: Callable[[ReapDecision, str], None] | None = None) -> list[ReapDecision]:
    """Destroy what ``select_for_reaping`` picks; returns the decisions (failures are collected, then raised).

    ``on_outcome(decision, outcome)`` hears about each one as it is handled: ``destroyed``,
    ``would destroy`` (dry run) or ``failed: <error>``.
    """
    decisions = select_for_reaping(provider.list_owned(), now=time.time() if now is None else now,
                                   is_run_finished=is_run_finished)
    failures = []
    for decision in decisions:
        if dry_run:
            outcome = "would destroy"
        else:
            try:
                provider.destroy_owned(decision.resource)
                outcome = "destroyed"
            except TestpilotError as exc:
                failures.append(f"{decision.resource.name}: {exc}")
                outcome = f"failed: {exc}"
        if on_outcome is not None:
            on_outcome(decision, outcome)
    if failures:
        raise TestpilotError(f"reaper could not remove {len(failures)} resource(s): {'; '.join(failures)}",
                             hint="run the reaper again; it is idempotent")
    return decisions
