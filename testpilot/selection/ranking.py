"""From evidence to an ordered selection: never_run, priority, confidence and budget modes, skipped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testpilot.results import Reason, SelectedTest, Selection
from testpilot.selection.history import History, HistoryIndex, priority, reason_proximity
from testpilot.selection.modes import apply_budget, apply_confidence, estimated_duration
from testpilot.selection.rules import is_excluded

if TYPE_CHECKING:
    from testpilot.selection.engine import Evidence


def rank(ev: Evidence, tests: dict[str, list[str]], never_run: dict[str, list[str]], *,
         history: History | None, budget: str | float | None, seconds: float | None, confidence: float | None,
         default_duration: float, notes: list[str]) -> Selection:
    """Order the tests with evidence, apply the modes, and list every other test as skipped."""
    index = HistoryIndex(history)
    selected: list[SelectedTest] = []
    skipped: list[SelectedTest] = []
    whole_files = {(app, t) for (app, t) in ev.reasons if "::" not in t}
    node_reasons: dict[tuple[str, str], list[Reason]] = {}
    for (app, test), reasons in ev.reasons.items():
        if "::" in test and (app, test.split("::")[0]) in whole_files:
            node_reasons.setdefault((app, test.split("::")[0]), []).extend(reasons)
    for (app, test), reasons in ev.reasons.items():
        if "::" in test and (app, test.split("::")[0]) in whole_files:
            continue  # the whole file runs anyway; its node-level evidence is folded into it
        reasons = reasons + node_reasons.get((app, test), [])
        excluded = is_excluded(test, never_run.get(app, []))
        if excluded:
            skipped.append(SelectedTest(app=app, test_id=test, reasons=[
                Reason(strategy="never_run", rule_id=excluded, text=f"never_run: {excluded}"), *reasons]))
            continue
        reasons = sorted(reasons, key=reason_proximity, reverse=True)  # the closest evidence first
        selected.append(SelectedTest.model_construct(app=app, test_id=test, reasons=reasons,
                                                     priority=priority(reasons, index.stats(app, test))))
    selected.sort(key=lambda t: (-t.priority, estimated_duration(t, index, default_duration), t.app, t.test_id))
    left_out: list[SelectedTest] = []
    modes = []
    if confidence is not None:
        selected, left, note = apply_confidence(selected, confidence, index)
        left_out += left
        notes.append(note)
        modes.append(f"confidence {confidence:g}%")
    if seconds is not None:
        selected, left = apply_budget(selected, seconds, index, default_duration, str(budget))
        left_out += left
        modes.append(f"budget {budget}")
    chosen_files = {(t.app, t.test_id.split("::")[0]) for t in selected + left_out + skipped}
    nothing = Reason(strategy="no_evidence", text="no changed file reaches it")
    for app_name, files in tests.items():
        for test in files:
            if (app_name, test) not in chosen_files:
                skipped.append(SelectedTest.model_construct(app=app_name, test_id=test, reasons=[nothing],
                                                            priority=0.0))
    return Selection(base="", head="", selected=selected, skipped=skipped, left_out=left_out,
                     mode=" + ".join(modes) or "safe", notes=notes)
