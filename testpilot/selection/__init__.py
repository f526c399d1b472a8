"""Change-based test selection: which tests a git change can affect, why, and in what order.

Names are loaded on first use, so a command that only selects does not build models it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testpilot.selection.coverage_map import CoverageMap, coverage_map_from_data
    from testpilot.selection.engine import run_selection, select_tests
    from testpilot.selection.explain import explain_test
    from testpilot.selection.history import History, RunRecord, TestStats
    from testpilot.selection.modes import parse_budget
    from testpilot.selection.output import (
        Explanation,
        format_selection,
        selection_table,
        summary_markdown,
        write_selection_json,
    )

_HOME = {"CoverageMap": "coverage_map", "coverage_map_from_data": "coverage_map", "run_selection": "engine",
         "select_tests": "engine", "explain_test": "explain", "History": "history", "RunRecord": "history",
         "TestStats": "history", "parse_budget": "modes", "Explanation": "output", "format_selection": "output",
         "selection_table": "output", "summary_markdown": "output", "write_selection_json": "output"}

__all__ = ["CoverageMap", "Explanation", "History", "RunRecord", "TestStats", "coverage_map_from_data",
           "explain_test", "format_selection", "parse_budget", "run_selection", "select_tests", "selection_table",
           "summary_markdown", "write_selection_json"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'testpilot.selection' has no attribute {name!r}")
    return getattr(importlib.import_module(f"testpilot.selection.{_HOME[name]}"), name)
