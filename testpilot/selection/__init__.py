"""Change-based test selection: which tests a git change can affect, why, and in what order."""

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

__all__ = ["CoverageMap", "Explanation", "History", "RunRecord", "TestStats", "coverage_map_from_data",
           "explain_test", "format_selection", "parse_budget", "run_selection", "select_tests", "selection_table",
           "summary_markdown", "write_selection_json"]
