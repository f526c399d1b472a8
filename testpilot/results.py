"""Plain result data shared by execution, failure analysis and reports."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

Outcome = Literal["passed", "failed", "error", "skipped"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))


class TestResult(BaseModel):
    """One test's outcome, parsed from JUnit XML (or made for a step that never ran)."""

    __test__ = False
    node_id: str = Field(description="Pytest node id relative to the app, e.g. tests/test_a.py::test_x")
    app: str
    outcome: Outcome
    duration: float = 0.0
    message: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    shard: int = 0
    environment: str = ""
    host: str = ""
    phase: str = "test"
    error_type: str = Field("", description="The exception type the runner reported (JUnit's type attribute).")

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")


class ShardResult(BaseModel):
    """One run of an app's test command over a set of tests."""

    app: str
    shard: int
    tests: list[str]
    results: list[TestResult] = Field(default_factory=list)
    exit_code: int | None = None
    duration: float = 0.0
    timed_out: bool = False
    aborted: str = Field("", description="Why the run was aborted by a stream pattern, if it was.")
    output_tail: str = Field("", description="Last lines of combined output, for failures with no JUnit.")
    environment: str = ""
    host: str = ""
    reruns: dict[str, list[Outcome]] = Field(default_factory=dict,
                                             description="Node id -> outcomes of its automatic re-runs.")
    dirty: bool = Field(False, description="The environment can no longer be trusted (abort pattern, lost "
                                           "connection): it is reset before anyone uses it again.")

    def rescued(self, result: TestResult) -> bool:
        """A failed test that passed on an automatic re-run: flaky, and it does not fail the run."""
        return result.failed and "passed" in self.reruns.get(result.node_id, [])

    @property
    def failures(self) -> list[TestResult]:
        """Failed results not rescued by a re-run."""
        return [r for r in self.results if r.failed and not self.rescued(r)]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.timed_out and not self.aborted

    def __repr__(self) -> str:  # Prefect logs failed states with their data; keep that to one line
        failed = sum(1 for r in self.results if r.failed)
        return f"ShardResult({self.app}#{self.shard}: {len(self.results)} results, {failed} failed)"


class Reason(BaseModel):
    """Why a test was selected or skipped: one line, plus the evidence behind it."""

    strategy: str = Field(description="mapping_rule, import_graph, coverage, changed_test, unanalysable, ...")
    text: str
    changed_file: str = ""
    rule_id: str = ""
    chain: list[str] = Field(default_factory=list)
    lines: list[int] = Field(default_factory=list, description="Changed lines, for coverage evidence.")


class SelectedTest(BaseModel):
    __test__ = False
    app: str
    test_id: str = Field(description="A pytest node id or a test file path, relative to the app.")
    reasons: list[Reason] = Field(default_factory=list)
    priority: float = 0.0

    @property
    def reason(self) -> str:
        return self.reasons[0].text if self.reasons else ""


class Selection(BaseModel):
    base: str
    head: str
    changed_files: list[str] = Field(default_factory=list)
    selected: list[SelectedTest] = Field(default_factory=list)
    skipped: list[SelectedTest] = Field(default_factory=list)
    unanalysable: list[str] = Field(default_factory=list)
    left_out: list[SelectedTest] = Field(default_factory=list,
                                         description="Tests with evidence dropped by a budget or confidence mode.")
    mode: str = "safe"
    base_commit: str = Field(default="", description="Commit sha base resolved to ('' for the working tree).")
    head_commit: str = Field(default="", description="Commit sha head resolved to ('' for the working tree).")
    notes: list[str] = Field(default_factory=list, description="What the engine could not do, and why.")
    affected_scenarios: dict[str, str] = Field(
        default_factory=dict, description="Scenario name -> why a change affects one of its steps.")

    def for_app(self, app: str) -> list[SelectedTest]:
        return [t for t in self.selected if t.app == app]
