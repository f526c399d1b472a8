"""``explain_test``: why one test was selected, left out or skipped for a change."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from testpilot.selection.engine import run_selection
from testpilot.selection.output import Explanation, explanation_text, find_test

if TYPE_CHECKING:
    from testpilot.suite import Suite


def explain_test(repo: Path, test: str, base: str | None, head: str | None = None, suite: Suite | None = None,
                 *, app: str | None = None, **options: Any) -> Explanation:
    """Run the selection for ``base``..``head`` and explain ``test`` (relative to its app folder).

    ``options`` are ``select_tests``'s keyword arguments (history, coverage, budget, ...). Besides the
    recorded reasons, it lists every import chain from the test to a changed file.
    """
    ws, selection = run_selection(repo, base, head, suite, **options)
    status, entry = find_test(selection, test, app)
    exp = Explanation(test=test, app=entry.app if entry else (app or ""), status=status,
                      reasons=list(entry.reasons) if entry else [])
    if entry is not None:
        spec = next(a for a in ws.apps if a.name == entry.app)
        start = spec.repo_path(entry.test_id.split("::")[0])
        chains = ws.graph.chains_from(start, set(ws.sources))
        exp.imports_reaching_changes = [[*chain[:-1], ws.sources[chain[-1]]] for chain in chains.values()
                                        if len(chain) > 1]
    exp.text = explanation_text(exp)
    return exp
