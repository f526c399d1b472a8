"""Test history from earlier runs, as plain data, and the priority order it gives.

The Prefect shell builds a ``History`` from stored run artifacts; this module never reads storage.
JSON shape (keys of ``tests`` and entries of ``failed`` are ``"<app>::<test id>"``)::

    {"tests": {"shop::tests/test_cart.py::test_total":
                   {"runs": 20, "failures": 3, "flips": 2, "mean_duration": 0.42}},
     "runs": [{"id": "flow-run-uuid", "failed": ["shop::tests/test_cart.py::test_total"]}]}
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from testpilot.results import Reason, TestResult


class TestStats(BaseModel):
    __test__ = False
    runs: int = Field(default=0, ge=0, description="Runs the test took part in.")
    failures: int = Field(default=0, ge=0, description="Runs in which it failed or errored.")
    flips: int = Field(default=0, ge=0, description="Times its outcome changed from one run to the next.")
    mean_duration: float = Field(default=0.0, ge=0, description="Mean seconds per run.")


class RunRecord(BaseModel):
    id: str = ""
    failed: list[str] = Field(default_factory=list, description="'<app>::<test id>' of each failing test.")


class History(BaseModel):
    """Per-test statistics and, per earlier run, which tests failed."""

    tests: dict[str, TestStats] = Field(default_factory=dict)
    runs: list[RunRecord] = Field(default_factory=list)

    @classmethod
    def from_results(cls, runs: Iterable[tuple[str, Iterable[TestResult]]]) -> History:
        """Build history from ``(run id, results)`` pairs, oldest run first."""
        tests: dict[str, TestStats] = {}
        last: dict[str, bool] = {}
        records = []
        for run_id, results in runs:
            failed = []
            for result in results:
                if result.outcome == "skipped":
                    continue
                key = f"{result.app}::{result.node_id}"
                stats = tests.setdefault(key, TestStats())
                stats.mean_duration = (stats.mean_duration * stats.runs + result.duration) / (stats.runs + 1)
                stats.runs += 1
                if result.failed:
                    stats.failures += 1
                    failed.append(key)
                if key in last and last[key] != result.failed:
                    stats.flips += 1
                last[key] = result.failed
            records.append(RunRecord(id=run_id, failed=failed))
        return cls(tests=tests, runs=records)


def key(app: str, test_id: str) -> str:
    return f"{app}::{test_id}"


def covers(selected_key: str, failed_key: str) -> bool:
    """Whether running ``selected_key`` (a node id or a whole file) runs ``failed_key``."""
    return failed_key == selected_key or failed_key.startswith(selected_key + "::")


class HistoryIndex:
    """History stats summed per selectable id (a file id covers all of its node ids)."""

    def __init__(self, history: History | None) -> None:
        self.history = history or History()
        self._by_file: dict[str, TestStats] = {}
        for name, stats in self.history.tests.items():
            app, _, test_id = name.partition("::")
            file_key = key(app, test_id.split("::", 1)[0])
            agg = self._by_file.setdefault(file_key, TestStats())
            agg.runs = max(agg.runs, stats.runs)
            agg.failures += stats.failures
            agg.flips += stats.flips
            agg.mean_duration += stats.mean_duration

    def stats(self, app: str, test_id: str) -> TestStats | None:
        if not self._by_file:
            return None
        name = key(app, test_id)
        return self.history.tests.get(name) if "::" in test_id else self._by_file.get(name)


# How close each kind of evidence is to the change; tests with closer evidence run first.
PROXIMITY = {"changed_test": 1.0, "recorded": 0.97, "coverage": 0.95, "name_match": 0.85, "string_reference": 0.5, "mapping_rule": 0.45,
             "dynamic_import": 0.4, "unanalysable": 0.3, "dependent_app": 0.25, "always_run": 0.2}


def reason_proximity(reason: Reason) -> float:
    if reason.strategy == "import_graph":
        hops = max(len(reason.chain) - 1, 1)
        return max(0.9 - 0.1 * (hops - 1), 0.5)
    return PROXIMITY.get(reason.strategy, 0.3)


def proximity(reasons: list[Reason]) -> float:
    return max((reason_proximity(r) for r in reasons), default=0.0)


def priority(reasons: list[Reason], stats: TestStats | None) -> float:
    """Likelihood-of-failure score in [0, 1]: failure rate, flakiness, then closeness to the change."""
    fail_rate = flip_rate = 0.0
    if stats and stats.runs:
        fail_rate = min(stats.failures / stats.runs, 1.0)
        flip_rate = min(stats.flips / stats.runs, 1.0)
    return round(0.45 * fail_rate + 0.15 * flip_rate + 0.4 * proximity(reasons), 6)
