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


SIBLING_SHARE = 0.5  # of a signature's re-run failures that passed, to call the rest of them flaky


def flaky_by_signature(keys: Sequence[str], reruns: Sequence[Sequence[Outcome]]) -> dict[int, str]:
    """Failures that failed their re-runs too, but share their exact signature with failures that mostly
    passed theirs: index -> the evidence. A deterministic cause fails every re-run; when most failures of
    one signature (same exception, crash point and masked message) passed a re-run, the cause is not
    deterministic, and one that failed twice only drew the bad outcome twice (a test failing 30% of the
    time fails a single re-run again about one time in three). Only failures that were re-run count."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if reruns[i]:
            groups.setdefault(key, []).append(i)
    found: dict[int, str] = {}
    for members in groups.values():
        passed = sum(1 for i in members if "passed" in reruns[i])
        if passed and passed < len(members) and passed / len(members) >= SIBLING_SHARE:
            for i in members:
                if "passed" not in reruns[i]:
                    found[i] = (f"failed its re-run, but {passed} of {len(members)} failures with the same "
                                "signature in this run passed theirs")
    return found
