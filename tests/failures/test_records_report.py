from __future__ import annotations

import json
import socket

from testpilot.errors import InfrastructureError, LockTimeout, ProvisioningError
from testpilot.failures.analysis import analyse_failures
from testpilot.failures.records import record_from_error, record_from_result
from testpilot.failures.report import cluster_rows, render_text, report_section
from testpilot.failures.suggest import HostRun
from testpilot.results import TestResult

from .variants import load_corpus


def test_record_from_junit_result_reads_type_and_phase():
    setup = next(e for e in load_corpus() if "test_uses_seeded_customers" in e["id"])
    result = TestResult(**setup["result"])
    record = record_from_result(result, [result.model_copy(update={"outcome": "passed"})])
    assert record.phase == "setup" and record.exception_type == "sqlite3.IntegrityError"
    assert record.message == "UNIQUE constraint failed: customers.email"
    assert record.rerun_outcomes == ["passed"] and record.test_file == "tests/test_data.py"
    collected = next(e for e in load_corpus() if e["id"] == "tests/test_dep_collect.py")
    record = record_from_result(TestResult(**collected["result"]))
    assert (record.phase, record.exception_type) == ("collection", "ModuleNotFoundError")
    assert "shop_legacy_api" in record.message


def test_record_from_testpilot_error_keeps_host_and_phase():
    try:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError as exc:
        try:
            raise ProvisioningError("VM did not start", host="pve-2", phase="provision", hint="check the node") from exc
        except ProvisioningError as err:
            record = record_from_error(err, environment="proxmox")
    assert (record.host, record.phase, record.exception_type) == ("pve-2", "provision", "ProvisioningError")
    assert record.message == "VM did not start (check the node)"
    assert "ConnectionRefusedError" in record.traceback and record.test_id == "provision:proxmox"
    lock = record_from_error(LockTimeout("no slot", pool="p", holders=["r1"], timeout=1.0))
    assert lock.phase == "lock"
    release = record_from_error(InfrastructureError("reset failed", host="h", phase="release"))
    assert release.phase == "release"


def test_outputs_table_rows_report_json_and_text():
    records = [record_from_error(InfrastructureError("reset failed: Connection refused", host="h1",
                                                     phase="release"), environment="ssh")]
    analysis = analyse_failures(records, run_id="run-7", flow_run_url="http://p/runs/7",
                                host_history=[HostRun(host="h1", system_failure=True)] * 3)
    (row,) = cluster_rows(analysis)
    assert {"category", "defect type", "count", "owner", "suggestion"} <= set(row)
    assert (row["category"], row["defect type"], row["count"]) == ("environment", "system", 1)
    assert "marked dirty" in row["suggestion"] and analysis.dirty_hosts == ["h1"]
    section = json.loads(json.dumps(report_section(analysis)))  # what report.json holds
    text = render_text(section)
    assert text == render_text(analysis)
    assert "Run run-7: 1 failures in 1 clusters" in text and "[environment/system] x1" in text
    assert "dirty hosts: h1" in text and "http://p/runs/7" in text


def test_records_from_shard_include_timeouts_and_aborts():
    from testpilot.failures.categories import Categoriser
    from testpilot.failures.records import records_from_shard
    from testpilot.results import ShardResult

    failed = TestResult(node_id="tests/test_a.py::test_x", app="shop", outcome="failed",
                        message="assert 1 == 2", traceback="tests/test_a.py:3: AssertionError")
    passed = failed.model_copy(update={"outcome": "passed", "node_id": "tests/test_a.py::test_y"})
    shard = ShardResult(app="shop", shard=1, tests=[], results=[failed, passed], timed_out=True, duration=900,
                        aborted="FATAL: the database system is shutting down", host="h3",
                        output_tail="...\nFATAL: the database system is shutting down")
    records = records_from_shard(shard, {"tests/test_a.py::test_x": ["passed"]})
    assert [r.exception_type for r in records] == ["AssertionError", "ExecutionTimeout", "StreamAbort"]
    assert records[0].rerun_outcomes == ["passed"]
    categories = [Categoriser().categorise(r).category for r in records]
    assert categories == ["flaky", "timeout", "environment"]
