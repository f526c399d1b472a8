"""Selection output: text, JSON, pytest arguments, a markdown summary, and ``explain``."""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from testpilot.errors import ConfigError
from testpilot.results import Reason, SelectedTest, Selection

Format = Literal["text", "json", "pytest-args"]


def format_selection(selection: Selection, fmt: str = "text", *, app: str | None = None) -> str:
    """Render a selection. ``pytest-args`` gives shell-quoted ids of one app (or ``app<TAB>ids`` lines)."""
    if fmt == "json":
        return selection.model_dump_json(indent=2)
    if fmt == "pytest-args":
        apps = [app] if app else sorted({t.app for t in selection.selected})
        lines = []
        for name in apps:
            ids = " ".join(shlex.quote(t.test_id) for t in selection.selected if t.app == name)
            lines.append(ids if app or len(apps) == 1 else f"{name}\t{ids}")
        return "\n".join(lines)
    if fmt == "text":
        return _text(selection)
    raise ConfigError(f"unknown format {fmt!r}", field="format", hint="use text, json or pytest-args")


def _text(sel: Selection) -> str:
    out = [f"{sel.base}...{sel.head}: {len(sel.changed_files)} changed file(s), mode {sel.mode}",
           f"selected {len(sel.selected)}, left out {len(sel.left_out)}, skipped {len(sel.skipped)}, "
           f"unanalysable {len(sel.unanalysable)}"]
    for test in sel.selected:
        out.append(f"  + {test.app}: {test.test_id}  [{test.priority:.2f}] {_why(test.reasons)}")
    for test in sel.left_out:
        out.append(f"  - {test.app}: {test.test_id}  {test.reasons[-1].text}")
    for file in sel.unanalysable:
        out.append(f"  ! unanalysable change: {file}")
    for name, why in sel.affected_scenarios.items():
        out.append(f"  scenario {name}: {why}")
    out.extend(f"  note: {note}" for note in sel.notes)
    return "\n".join(out)


def _why(reasons: list[Reason]) -> str:
    if not reasons:
        return ""
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return reasons[0].text + more


def summary_markdown(selection: Selection, *, limit: int = 50) -> str:
    """A short markdown report (counts, strategies, top tests with reasons) for a Prefect artifact."""
    strategies = Counter(r.strategy for t in selection.selected for r in t.reasons[:1])
    rows = [f"| {t.app} | `{t.test_id}` | {t.priority:.2f} | {_why(t.reasons).replace('|', '/')} |"
            for t in selection.selected[:limit]]
    left = [f"| {t.app} | `{t.test_id}` | {t.reasons[-1].text} |" for t in selection.left_out[:limit]]
    parts = [f"## Test selection ({selection.mode})",
             f"**{len(selection.selected)}** selected, **{len(selection.left_out)}** left out, "
             f"**{len(selection.skipped)}** skipped, **{len(selection.unanalysable)}** unanalysable; "
             f"{len(selection.changed_files)} changed file(s).",
             "By strategy: " + (", ".join(f"{k} {v}" for k, v in strategies.most_common()) or "none"),
             "", "| app | test | priority | why |", "|---|---|---|---|", *rows]
    if left:
        parts += ["", "Left out:", "", "| app | test | why |", "|---|---|---|", *left]
    if selection.unanalysable:
        parts += ["", "Unanalysable: " + ", ".join(f"`{f}`" for f in selection.unanalysable)]
    return "\n".join(parts)


def selection_table(selection: Selection, *, limit: int = 500) -> list[dict[str, str]]:
    """Rows (app, test, status, priority, why) of selected, left-out and unanalysable entries, for a
    table artifact. Skipped tests are only counted in ``summary_markdown``: there can be thousands."""
    rows = [{"app": t.app, "test": t.test_id, "status": "selected", "priority": f"{t.priority:.2f}",
             "why": _why(t.reasons)} for t in selection.selected[:limit]]
    rows += [{"app": t.app, "test": t.test_id, "status": "left out", "priority": f"{t.priority:.2f}",
              "why": t.reasons[-1].text} for t in selection.left_out[:limit]]
    rows += [{"app": "", "test": f, "status": "unanalysable", "priority": "", "why": "unanalysable change"}
             for f in selection.unanalysable]
    return rows


def write_selection_json(selection: Selection, path: str | Path) -> Path:
    """Write ``selection.json`` and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(selection.model_dump_json(indent=2))
    return target


class Explanation(BaseModel):
    test: str
    app: str = ""
    status: Literal["selected", "left_out", "skipped", "unknown"]
    reasons: list[Reason] = Field(default_factory=list)
    imports_reaching_changes: list[list[str]] = Field(
        default_factory=list, description="Every import chain from the test to a changed file.")
    text: str = ""


def find_test(selection: Selection, test: str, app: str | None = None,
              ) -> tuple[str, SelectedTest | None]:
    """(status, entry) of ``test`` (a file or node id) in a selection; a node matches its file's entry."""
    file = test.split("::")[0]
    for status, group in (("selected", selection.selected), ("left_out", selection.left_out),
                          ("skipped", selection.skipped)):
        for entry in group:
            if app and entry.app != app:
                continue
            if entry.test_id in (test, file) or entry.test_id.startswith(test + "::"):
                return status, entry
    siblings = [e for e in selection.selected if e.test_id.startswith(file + "::") and (not app or e.app == app)]
    if siblings:
        why = Reason(strategy="no_evidence", text=f"other tests of {file} ran the changed lines; this one did not")
        return "skipped", SelectedTest(app=siblings[0].app, test_id=test, reasons=[why])
    return "unknown", None


def explanation_text(exp: Explanation) -> str:
    head = {"selected": "selected", "left_out": "left out", "skipped": "skipped",
            "unknown": "not a known test"}[exp.status]
    lines = [f"{exp.app + ': ' if exp.app else ''}{exp.test}: {head}"]
    lines += [f"  - [{r.strategy}] {r.text}" for r in exp.reasons]
    if exp.status == "skipped" and not exp.imports_reaching_changes:
        lines.append("  its imports reach no changed file, and no rule names it")
    for chain in exp.imports_reaching_changes:
        lines.append("  import chain: " + " -> ".join(chain))
    if exp.status == "unknown":
        lines.append("  check the id: it must be relative to the app folder and match the test paths")
    return "\n".join(lines)
