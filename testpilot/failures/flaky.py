"""Flakiness: a pure verdict from a first result and its re-runs, and the flip rate over history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from testpilot.results import Outcome

Verdict = Literal["passed", "failed", "flaky", "skipped"]


def decide_flaky(first: Outcome, reruns: Sequence[Outcome]) -> Verdict:
    """``flaky`` when a failed test passes on any re-run; ``failed`` when every re-run fails too."""
    if first in ("passed", "skipped"):
        return first
    if any(r == "passed" for r in reruns):
        return "flaky"
    return "failed"


def flip_rate(history: Sequence[Outcome]) -> float:
    """Share of consecutive results that changed between pass and fail (skips ignored), 0..1."""
    runs = ["passed" if o == "passed" else "failed" for o in history if o != "skipped"]
    if len(runs) < 2:
        return 0.0
    flips = sum(1 for a, b in zip(runs, runs[1:], strict=False) if a != b)
    return flips / (len(runs) - 1)


def reruns_needed(first: Outcome, reruns_done: Sequence[Outcome], budget: int) -> bool:
    """Whether to re-run once more: the test failed, no re-run has passed, and budget is left."""
    return first in ("failed", "error") and "passed" not in reruns_done and len(reruns_done) < budget
