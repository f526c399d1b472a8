from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from testpilot.failures.analysis import analyse_failures
from testpilot.failures.config import FailuresConfig
from testpilot.failures.flaky import decide_flaky, flaky_by_signature, flip_rate, reruns_needed
from testpilot.failures.history import updated_history
from testpilot.failures.records import FailureRecord

REFUSED = "tests/test_a.py:3: \n_ _ _ _ _ _ _ _ _ _\n/usr/lib/python3.11/socket.py:836: ConnectionRefusedError"


def refused(test: str, port: int) -> FailureRecord:
    return FailureRecord(test_id=test, exception_type="ConnectionRefusedError", host="10.0.0.5",
                         message=f"[Errno 111] Connection refused to 127.0.0.1:{port}", traceback=REFUSED)


def boom(test: str, n: int) -> FailureRecord:
    return FailureRecord(test_id=test, exception_type="KeyError", message=f"'k{n}'",
                         traceback="tests/test_b.py:9: \n_ _ _ _ _ _ _ _\n\n    def get():\n>  x\nE   KeyError\n\n"
                                   "shop/store.py:12: KeyError")


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 12, 0, tzinfo=UTC)


def test_clusters_carry_first_seen_last_seen_and_counts_across_runs():
    run1 = analyse_failures([refused("t::a", 5432), refused("t::b", 5433), boom("t::c", 1)], run_id="r1", now=day(1))
    history = json.loads(json.dumps(updated_history([], run1.clusters)))  # stored as plain JSON
    run2 = analyse_failures([refused("t::d", 6000)], run_id="r2", now=day(2), past_clusters=history)
    (cluster,) = run2.clusters
    before = next(c for c in run1.clusters if c.category == "environment")
    assert cluster.id == before.id and not cluster.new and cluster.matched == "id"
    assert cluster.first_seen == day(1).isoformat() and cluster.last_seen == day(2).isoformat()
    assert cluster.first_run == "r1"
    assert (cluster.occurrences, cluster.runs_seen) == (3, 2)
    history = updated_history(history, run2.clusters)
    assert {e["id"] for e in history} == {c.id for c in run1.clusters}
    assert next(e for e in history if e["id"] == cluster.id)["occurrences"] == 3


def test_a_changed_wording_matches_by_similarity_and_keeps_the_id():
    first = FailureRecord(test_id="t::a", exception_type="OperationalError", traceback=REFUSED,
                          message='connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                                  "Connection refused Is the server running on that host and accepting TCP/IP")
    run1 = analyse_failures([first], run_id="r1", now=day(1))
    reworded = first.model_copy(update={"message": first.message + " connections?"})
    run2 = analyse_failures([reworded], run_id="r2", now=day(2), past_clusters=updated_history([], run1.clusters))
    assert run2.clusters[0].id == run1.clusters[0].id
    assert run2.clusters[0].matched.startswith("similar")


def test_new_cluster_when_nothing_matches():
    run = analyse_failures([boom("t::x", 1)], run_id="r9", now=day(3),
                           past_clusters=updated_history([], analyse_failures([refused("t::a", 1)]).clusters))
    assert run.clusters[0].new and run.clusters[0].runs_seen == 1 and run.clusters[0].first_run == "r9"


def test_unclassified_cluster_shows_its_nearest_known_cluster():
    known = analyse_failures([refused("t::a", 1)], run_id="r1", now=day(1))
    odd = FailureRecord(test_id="t::z", exception_type="WeirdThing", message="Connection went sideways",
                        traceback="/usr/lib/python3.11/site-packages/lib/x.py:3: WeirdThing")
    run = analyse_failures([odd], run_id="r2", now=day(2), past_clusters=updated_history([], known.clusters))
    (cluster,) = run.clusters
    assert cluster.category == "unclassified" and cluster.defect_type == "to_investigate"
    assert cluster.nearest == known.clusters[0].id and cluster.nearest_category == "environment"
    assert 0 < cluster.nearest_similarity < 1


@pytest.mark.parametrize("first,reruns,verdict", [
    ("failed", ["failed", "passed"], "flaky"),
    ("error", ["passed"], "flaky"),
    ("failed", ["failed", "failed"], "failed"),
    ("failed", [], "failed"),
    ("passed", [], "passed"),
])
def test_flaky_verdict(first, reruns, verdict):
    assert decide_flaky(first, reruns) == verdict


def test_flip_rate_and_rerun_budget():
    assert flip_rate(["passed", "failed", "passed", "passed", "skipped", "failed"]) == pytest.approx(3 / 4)
    assert flip_rate(["failed"]) == 0.0
    assert reruns_needed("failed", ["failed"], budget=2)
    assert not reruns_needed("failed", ["failed", "failed"], budget=2)
    assert not reruns_needed("failed", ["passed"], budget=3)


def test_flaky_cluster_reports_flip_rates_from_history():
    record = boom("t::f", 1).model_copy(update={"rerun_outcomes": ["passed"]})
    run = analyse_failures([record], test_history={"t::f": ["passed", "passed", "failed", "passed"]})
    (cluster,) = run.clusters
    assert cluster.category == "flaky"
    # history p p f p, then this run: f (first) p (re-run) -> 4 flips over 5 steps
    assert cluster.flip_rates == {"t::f": 0.8}


def test_flaky_failures_cluster_apart_from_the_same_error_failing_for_good():
    steady = [boom(f"t::s{i}", i) for i in range(3)]
    flaky = [boom(f"t::f{i}", i).model_copy(update={"rerun_outcomes": ["passed"]}) for i in range(2)]
    run = analyse_failures(steady + flaky)
    assert sorted((c.category, c.count) for c in run.clusters) == [("flaky", 2), ("product_bug", 3)]
    assert run.clusters[0].id != run.clusters[1].id


def test_a_signature_that_mostly_passed_its_reruns_makes_the_twice_failed_ones_flaky():
    found = flaky_by_signature(["s", "s", "s", "d", "d"], [["passed"], ["failed"], ["passed"], ["failed"], ["failed"]])
    assert list(found) == [1] and "2 of 3 failures with the same signature" in found[1]
    assert flaky_by_signature(["s", "s", "s"], [["passed"], ["failed"], ["failed"]]) == {}  # 1 of 3: not enough
    assert flaky_by_signature(["s", "s"], [[], ["failed"]]) == {}  # only re-run failures count


def race(test: str, rerun: str) -> FailureRecord:
    trace = "    def test_race():\n>       assert connect()\nE   ConnectionRefusedError\n\ntests/test_sync.py:7: Err"
    return FailureRecord(test_id=test, exception_type="ConnectionRefusedError", host="10.0.0.5",
                         message="[Errno 111] Connection refused", traceback=trace, rerun_outcomes=[rerun])


def test_in_a_run_a_racing_test_that_failed_twice_is_flaky_and_a_database_down_for_all_is_not():
    racing = [race(f"tests/test_sync.py::test_race[{i}]", "failed" if i == 0 else "passed") for i in range(3)]
    down = [refused(f"t::db{i}", 5432).model_copy(update={"rerun_outcomes": ["failed"]}) for i in range(4)]
    analysis = analyse_failures([*racing, *down])
    by_test = {t.test_id: t for t in analysis.tests}
    assert by_test["tests/test_sync.py::test_race[0]"].category == "flaky"
    assert "2 of 3 failures with the same signature" in by_test["tests/test_sync.py::test_race[0]"].evidence
    assert {by_test[f"t::db{i}"].category for i in range(4)} == {"environment"}
    configured = FailuresConfig(categories=[{"name": "network", "patterns": ["Connection refused"]}])
    assert {t.category for t in analyse_failures(racing, configured).tests} == {"network"}  # rules stay first
