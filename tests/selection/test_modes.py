"""Prioritisation, time budget and confidence modes, and what each leaves out."""

from __future__ import annotations

import pytest

from testpilot.errors import ConfigError
from testpilot.results import Reason, SelectedTest, TestResult
from testpilot.selection import History, parse_budget, select_tests
from testpilot.selection.history import HistoryIndex, RunRecord, TestStats, priority
from testpilot.selection.modes import apply_budget, apply_confidence

from .helpers import SHOP, Repo


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400),
                                               ("45", 45), (120, 120), ("500ms", 0.5)])
def test_parse_budget(text: str | int, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "10x", "-5m", "0"])
def test_bad_budget_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_budget(bad)
    assert err.value.field == "budget"


def entry(test_id: str, strategy: str = "import_graph", chain: int = 2) -> SelectedTest:
    return SelectedTest(app="a", test_id=test_id,
                        reasons=[Reason(strategy=strategy, text="t", chain=["x"] * chain)])


def hist(**stats: tuple[int, int, int, float]) -> History:
    return History(tests={f"a::{k.replace('_', '/', 1)}.py": TestStats(runs=r, failures=f, flips=fl, mean_duration=d)
                          for k, (r, f, fl, d) in stats.items()})


def test_priority_orders_by_failure_rate_then_proximity() -> None:
    flaky = TestStats(runs=10, failures=5, flips=5, mean_duration=1)
    calm = TestStats(runs=10, failures=0, flips=0, mean_duration=1)
    direct, transitive = entry("t1", chain=2).reasons, entry("t2", chain=5).reasons
    assert priority(transitive, flaky) > priority(direct, calm)
    assert priority(direct, calm) > priority(transitive, calm)
    assert priority(transitive, calm) > priority(entry("t3", "mapping_rule").reasons, calm)


def test_selected_tests_come_out_in_priority_order_cheap_first_on_ties(repo: Repo) -> None:
    base = repo.commit(SHOP)
    head = repo.commit({"shop/pricing.py": "RATE = 3\n\ndef price(x):\n    return x * RATE\n"})
    history = History(tests={"default::tests/test_checkout.py::test_pay": TestStats(runs=4, failures=2),
                             "default::tests/test_cart.py::test_total": TestStats(runs=4, failures=0)})
    sel = select_tests(repo.path, base, head, history=history)
    assert [t.test_id for t in sel.selected] == ["tests/test_checkout.py", "tests/test_cart.py"]


def test_budget_leaves_out_what_does_not_fit_and_says_so() -> None:
    tests = [entry("tests/slow.py"), entry("tests/mid.py"), entry("tests/fast.py")]
    index = HistoryIndex(hist(tests_slow=(5, 0, 0, 50.0), tests_mid=(5, 0, 0, 20.0), tests_fast=(5, 0, 0, 5.0)))
    kept, left = apply_budget(tests, 30, index, default_duration=1.0, label="30s")
    assert [t.test_id for t in kept] == ["tests/mid.py", "tests/fast.py"]
    assert [t.test_id for t in left] == ["tests/slow.py"]
    assert left[0].reasons[-1].strategy == "left_out"
    assert left[0].reasons[-1].text.startswith("time budget 30s: needs ~50.0s")


def test_budget_mode_end_to_end(repo: Repo) -> None:
    base = repo.commit(SHOP)
    head = repo.commit({"shop/__init__.py": "V = 1\n"})
    history = History(tests={"default::tests/test_util.py::test_noop": TestStats(runs=3, mean_duration=100.0)})
    sel = select_tests(repo.path, base, head, history=history, budget="1m", default_duration=10)
    assert {t.test_id for t in sel.selected} == {"tests/test_cart.py", "tests/test_checkout.py"}
    assert [t.test_id for t in sel.left_out] == ["tests/test_util.py"]
    assert sel.mode == "budget 1m"


def test_confidence_keeps_tests_that_catch_the_target_share_of_failing_runs() -> None:
    tests = [entry("tests/a.py"), entry("tests/b.py"), entry("tests/c.py"), entry("tests/d.py")]
    runs = [RunRecord(id="1", failed=["a::tests/a.py::t"]), RunRecord(id="2", failed=["a::tests/a.py::t"]),
            RunRecord(id="3", failed=["a::tests/b.py::t"]), RunRecord(id="4", failed=["a::tests/c.py::t"]),
            RunRecord(id="5", failed=[]), RunRecord(id="6", failed=["a::other.py::t"])]
    index = HistoryIndex(History(runs=runs))
    kept, left, note = apply_confidence(tests, 75, index)
    assert [t.test_id for t in kept] == ["tests/a.py", "tests/b.py"]  # 3 of 4 catchable failing runs
    assert [t.test_id for t in left] == ["tests/c.py", "tests/d.py"]
    assert "3 of 4 historical failing runs" in left[0].reasons[-1].text
    assert note.endswith("3/4 historical failing runs")
    kept, left, _ = apply_confidence(tests, 100, index)
    assert [t.test_id for t in left] == ["tests/d.py"]


def test_confidence_keeps_changed_tests_and_keeps_all_without_history() -> None:
    tests = [entry("tests/a.py"), entry("tests/new.py", "changed_test")]
    index = HistoryIndex(History(runs=[RunRecord(failed=["a::tests/a.py::t"])]))
    kept, left, _ = apply_confidence(tests, 50, index)
    assert [t.test_id for t in kept] == ["tests/a.py", "tests/new.py"] and left == []
    kept, left, note = apply_confidence(tests, 90, HistoryIndex(None))
    assert len(kept) == 2 and left == [] and "kept all" in note


def test_confidence_must_be_a_percentage() -> None:
    with pytest.raises(ConfigError):
        apply_confidence([], 0, HistoryIndex(None))


def test_history_from_results_counts_failures_flips_and_durations() -> None:
    def result(outcome: str, duration: float) -> TestResult:
        return TestResult(node_id="tests/t.py::x", app="a", outcome=outcome, duration=duration)  # type: ignore[arg-type]

    history = History.from_results([("r1", [result("passed", 1.0)]), ("r2", [result("failed", 3.0)]),
                                    ("r3", [result("passed", 2.0)])])
    stats = history.tests["a::tests/t.py::x"]
    assert (stats.runs, stats.failures, stats.flips, stats.mean_duration) == (3, 1, 2, 2.0)
    assert [r.failed for r in history.runs] == [[], ["a::tests/t.py::x"], []]
    assert History.model_validate_json(history.model_dump_json()) == history
