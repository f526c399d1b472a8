"""Budget and confidence modes: which prioritised tests to keep, and why the rest were left out."""

from __future__ import annotations

import re

from testpilot.errors import ConfigError
from testpilot.results import Reason, SelectedTest
from testpilot.selection.history import HistoryIndex, covers, key

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)?", re.I)
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_budget(text: str | float | int) -> float:
    """Seconds in a budget such as ``10m``, ``90s``, ``1h30m``, ``1.5h`` or a bare number of seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        raw = text.strip().lower()
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(raw):
            if match.start() != pos or (match.group(2) is None and match.end() != len(raw)):
                break
            seconds += float(match.group(1)) * _UNIT[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise ConfigError(f"cannot read time budget {text!r}", field="budget",
                              hint="write it like 10m, 90s, 1h30m or 1.5h")
    if seconds <= 0:
        raise ConfigError(f"time budget must be positive, got {text!r}", field="budget",
                          hint="write it like 10m")
    return seconds


def estimated_duration(test: SelectedTest, index: HistoryIndex, default: float) -> float:
    stats = index.stats(test.app, test.test_id)
    return stats.mean_duration if stats and stats.runs else default


def apply_budget(tests: list[SelectedTest], seconds: float, index: HistoryIndex, default_duration: float,
                 label: str) -> tuple[list[SelectedTest], list[SelectedTest]]:
    """Keep tests in priority order while they fit; a test that does not fit is left out, later cheaper
    ones may still fit."""
    kept, left = [], []
    used = 0.0
    for test in tests:
        cost = estimated_duration(test, index, default_duration)
        if used + cost <= seconds:
            kept.append(test)
            used += cost
        else:
            left.append(_left(test, f"time budget {label}: needs ~{cost:.1f}s, "
                                    f"{max(seconds - used, 0):.1f}s of {seconds:.0f}s left"))
    return kept, left


def apply_confidence(tests: list[SelectedTest], target: float, index: HistoryIndex,
                     ) -> tuple[list[SelectedTest], list[SelectedTest], str]:
    """Keep the prefix of ``tests`` that caught ``target``% of the historical failing runs they could
    have caught. Changed test files are always kept. With no failing runs in history, keep everything."""
    if not 0 < target <= 100:
        raise ConfigError(f"confidence must be in (0, 100], got {target}", field="confidence",
                          hint="pass a percentage such as 90")
    keys = [key(t.app, t.test_id) for t in tests]
    failing = []
    for run in index.history.runs:
        hits = {i for i, k in enumerate(keys) for failed in run.failed if covers(k, failed)}
        if hits:
            failing.append(hits)
    if not failing:
        return tests, [], f"confidence {target:g}%: no history of failing runs for these tests, kept all"
    needed = target / 100 * len(failing)
    kept, left = [], []
    caught: set[int] = set()
    for i, test in enumerate(tests):
        changed = any(r.strategy == "changed_test" for r in test.reasons)
        if len(caught) < needed or changed:
            kept.append(test)
            caught.update(j for j, hits in enumerate(failing) if i in hits)
        else:
            left.append(_left(test, f"confidence {target:g}%: tests ranked above it already catch "
                                    f"{len(caught)} of {len(failing)} historical failing runs"))
    note = f"confidence {target:g}%: kept tests catch {len(caught)}/{len(failing)} historical failing runs"
    return kept, left, note


def _left(test: SelectedTest, text: str) -> SelectedTest:
    return test.model_copy(update={"reasons": [*test.reasons, Reason(strategy="left_out", text=text)]})
