"""The run summary, verdict, history, triage and log batching: pure logic, no Prefect."""

import threading
import xml.etree.ElementTree as ET

import pytest

from testpilot.errors import ConfigError
from testpilot.execution.batching import LineBatcher
from testpilot.reporting import write_junit
from testpilot.results import Reason, SelectedTest, Selection, ShardResult, TestResult
from testpilot.run_report import (
    failures_first,
    locks_markdown,
    not_run_results,
    rollup_states,
    run_counts,
    run_summary_markdown,
    run_tags,
    verdict,
)
from testpilot.test_history import Seen, commits_between, histories, history_markdown
from testpilot.triage import Decision, apply, record
from tests.conftest import commit_change, git, make_repo

FAILURE = {"app": "pay", "node_id": "tests/test_fees.py::test_cap", "category": "product_bug",
           "defect_type": "product", "owner": "payments-team", "message": "assert 5000 == 500", "cluster": "c1"}


def shards() -> list[ShardResult]:
    ran = ShardResult(app="pay", shard=1, tests=["tests/test_fees.py"], results=[
        TestResult(node_id="tests/test_fees.py::test_cap", app="pay", outcome="failed", shard=1,
                   message="assert 5000 == 500"),
        TestResult(node_id="tests/test_fees.py::test_ok", app="pay", outcome="passed", shard=1, duration=0.5)])
    blocked = ShardResult(app="web", shard=0, tests=["tests/test_a.py", "tests/test_b.py"],
                          results=not_run_results("web", 0, ["tests/test_a.py", "tests/test_b.py"],
                                                  "dependency app:pay#1 failed"))
    return [ran, blocked]


def selection() -> Selection:
    return Selection(base="HEAD~1", head="HEAD", base_commit="a" * 40, head_commit="b" * 40,
                     changed_files=["src/fees.py"],
                     selected=[SelectedTest(app="pay", test_id="tests/test_fees.py",
                                            reasons=[Reason(strategy="mapping_rule", text="fees.py changed")])])


def test_not_run_tests_count_as_skipped_in_summary_verdict_and_junit(tmp_path):
    counts = run_counts(shards())
    assert counts == {"tests": 4, "passed": 1, "failed": 1, "errors": 0, "skipped": 2, "not_run": 2, "flaky": 0}
    passed, why = verdict(counts, [FAILURE], [{"scenario": "e2e", "verdict": "passed"}],
                          {"app:web#0": "dependency app:pay#1 failed"})
    assert not passed
    assert why.startswith("FAILED: 1 of 4 test(s) failed: pay tests/test_fees.py::test_cap (product_bug, owner "
                          "payments-team)")
    assert "2 not run (dependency app:pay#1 failed)" in why and "scenario e2e passed" in why
    write_junit(tmp_path / "junit.xml", shards())
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert sum(int(s.get("tests")) for s in root.iter("testsuite")) == counts["tests"]
    web = next(s for s in root.iter("testsuite") if s.get("name") == "web")
    assert web.get("skipped") == "2"
    assert [c.find("skipped").get("message") for c in web.iter("testcase")] == [
        "not run: dependency app:pay#1 failed"] * 2


def test_summary_puts_verdict_then_failures_then_not_run_and_names_commits():
    md = run_summary_markdown(
        suite="shop", selection=selection(), shards=shards(), failures=[FAILURE],
        clusters=[{"id": "c1", "count": 1, "likely_cause": "product code: start at the diff", "new": True}],
        scenarios=[{"scenario": "e2e", "verdict": "passed", "steps": [
            {"name": "login", "app": "users", "status": "passed", "outputs": ["token"]}]}],
        data_flows={"e2e": [("tok", "users.login.token", "pay.create.auth")]},
        not_run={"app:web#0": "dependency app:pay#1 failed"},
        envs=[{"pool": "int", "id": "int-0", "host": "localhost", "provider": "local", "prepared": "fresh folder",
               "lock_wait": 1.25}],
        logs={("pay", 1): "http://ui/runs/task-run/42"}, history_md="## History of failing tests\n")
    assert md.startswith("# FAILED: 1 of 4 test(s) failed\n")
    order = [md.index(s) for s in ("## Failures (1)", "## Not run or skipped (2)", "## Scenarios",
                                   "## History of failing tests", "## Selection", "## Environments")]
    assert order == sorted(order)
    assert "**owner** payments-team" in md and "product_bug" in md and "[task-run log](http://ui/runs/task-run/42)" in md
    assert "| web | `tests/test_a.py` | dependency app:pay#1 failed |" in md
    assert "`aaaaaaaaaa`" in md and "`bbbbbbbbbb`" in md
    assert "`tok`: users.login.token → pay.create.auth" in md
    assert "| int | int-0 | localhost | local | fresh folder | 1.2s |" in md


def test_rows_failures_first_and_rollup_leaves_nothing_pending():
    rows = [{"outcome": o} for o in ("passed", "skipped", "error", "failed", "passed")]
    assert [r["outcome"] for r in failures_first(rows)] == ["failed", "error", "skipped", "passed", "passed"]
    states = {"app:pay#0": "Completed", "app:pay#1": "Failed", "app:web#0": "Skipped"}
    rolled = rollup_states(states, {"app:pay#0": "pay", "app:pay#1": "pay", "app:web#0": "web"},
                           {"pay": "int", "web": "int"})
    assert rolled == {"app:pay": "Failed", "app:web": "Skipped", "env:int": "Completed"}


def test_tags_name_suite_apps_owners_pools_and_commit():
    tags = run_tags("shop", ["pay", "web"], {"pay": ["payments-team"], "web": ["web-team", "payments-team"]},
                    ["int"], "c" * 40)
    assert tags == ["suite:shop", "app:pay", "app:web", "owner:payments-team", "owner:web-team", "pool:int",
                    "commit:cccccccccc"]


def test_history_finds_last_pass_and_failing_streak_and_commits_since(tmp_path):
    repo = make_repo(tmp_path)
    good = git(repo, "rev-parse", "HEAD").strip()
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price", message="swap operands")
    head = git(repo, "rev-parse", "HEAD").strip()
    row = {"app": "pay", "node_id": "t::x"}
    runs = [{"run_id": "r3", "created": "2026-01-03T00:00", "rows": [{**row, "outcome": "failed", "commit": head}]},
            {"run_id": "r2", "created": "2026-01-02T00:00", "rows": [{**row, "outcome": "passed", "duration": 0.2,
                                                                      "commit": good}]},
            {"run_id": "r1", "created": "2026-01-01T00:00", "rows": [{**row, "outcome": "failed", "commit": good}]}]
    [h] = histories([("pay", "t::x")], Seen("failed", 0.3, "r4", head, "2026-01-04T00:00"), runs)
    assert [s.outcome for s in h.seen] == ["failed", "failed", "passed", "failed"]
    assert h.last_passed and h.last_passed.run_id == "r2"
    assert h.failing_since and h.failing_since.run_id == "r3"
    h.changes = commits_between(repo, good, head)
    assert len(h.changes) == 1 and h.changes[0].endswith("swap operands")
    md = history_markdown([h], 3)
    assert "✗ 0.30s · ✗ 0.00s · ✓ 0.20s · ✗ 0.00s" in md and "swap operands" in md
    assert "**failing since** 2026-01-03 00:00" in md and "**last passed** 2026-01-02 00:00" in md
    assert commits_between(repo, "not-a-sha; rm -rf /", head) == []
    assert commits_between(repo, "--output=/tmp/x", head) == []


def test_triage_decision_applies_to_the_same_cluster_by_id_or_signature():
    decisions = record({}, Decision(cluster="c1", category="environment", status="known", note="ISSUE-7"))
    clusters = [{"id": "c1", "signature": "S", "category": "product_bug", "defect_type": "product"},
                {"id": "c2", "signature": "T", "category": "flaky", "defect_type": "automation"}]
    new_clusters, per_test = apply(decisions, clusters, [FAILURE, {**FAILURE, "cluster": "c2"}])
    assert new_clusters[0]["category"] == "environment" and new_clusters[0]["computed_category"] == "product_bug"
    assert per_test[0]["category"] == "environment" and per_test[0]["triage"] == "known, ISSUE-7"
    assert per_test[1]["category"] == "product_bug" and "triage" not in per_test[1]
    by_signature = {"x": {"cluster": "x", "signature": "T", "category": "automation_bug", "status": "flaky"}}
    assert apply(by_signature, clusters, [])[0][1]["category"] == "automation_bug"
    with pytest.raises(ConfigError, match="must change something"):
        record({}, Decision(cluster="c1"))


def test_locks_markdown_links_holders_and_waiters():
    md = locks_markdown({"int": {"slots": 1, "holders": [{"run_id": "h", "name": "red-fox", "state": "Running"}],
                                 "waiters": [{"run_id": "w", "name": "blue-cat", "state": "Running"}]}}, "http://ui")
    assert "| int | 1 | [red-fox (Running)](http://ui/runs/flow-run/h) | [blue-cat (Running)](http://ui/runs/flow-run/w) |" in md


def test_line_batcher_joins_a_burst_and_flushes_on_close():
    out: list[str] = []
    done = threading.Event()
    batch = LineBatcher(lambda text: (out.append(text), done.set()), window=0.05)
    for i in range(5):
        batch.add(f"line {i}")
    assert done.wait(5)
    batch.add("tail")
    batch.close()
    assert out == ["line 0\nline 1\nline 2\nline 3\nline 4", "tail"]
    big = LineBatcher(out.append, window=60, max_lines=3)
    for i in range(3):
        big.add(str(i))
    assert out[-1] == "0\n1\n2"
    big.close()


def test_flakiness_history_counts_only_runs_of_the_commit_under_test():
    from testpilot.test_history import same_commit_outcomes

    def run(commit: str, **outcomes: str) -> dict:
        return {"rows": [{"app": app, "node_id": "t.py::x", "outcome": o, "commit": commit}
                         for app, o in outcomes.items()]}

    runs = [run("bbb", web="passed"), run("aaa", web="failed"), run("bbb", web="failed", api="passed"),
            run("bbb", web="passed")]  # newest first
    assert same_commit_outcomes([("web", "t.py::x")], "bbb", runs) == {"t.py::x": ["passed", "failed", "passed"]}
    assert same_commit_outcomes([("web", "t.py::x")], "ccc", runs) == {}
    assert same_commit_outcomes([("web", "t.py::x")], "", runs) == {}  # no commit, no evidence
    # two failing apps share the node id: neither history is used rather than a mix of both
    assert same_commit_outcomes([("web", "t.py::x"), ("api", "t.py::x")], "bbb", runs) == {}


def test_environments_table_says_which_member_ran_which_shard():
    envs = [{"pool": "vms", "id": f"vm-{i}", "host": f"127.0.0.{i + 2}", "provider": "proxmox",
             "prepared": "reset to baseline", "lock_wait": 0.5, "shards": s} for i, s in enumerate(["pay[0], web[0]", "pay[1]", "-"])]
    md = run_summary_markdown(suite="shop", selection=selection(), shards=shards(), failures=[], envs=envs)
    assert "| pool | environment | host | provider | prepared | lock wait | shards |" in md
    assert "| vms | vm-0 | 127.0.0.2 | proxmox | reset to baseline | 0.5s | pay[0], web[0] |" in md
    assert "| vms | vm-2 | 127.0.0.4 | proxmox | reset to baseline | 0.5s | - |" in md
