"""A remote run interrupted (SIGINT, SIGTERM) in the middle of a test, then a second run on the same pool.

Before: teardown handed the VM back while the node thread still streamed; the second run took the
VM and rolled it back with the first run's pytest still running, and the dying run reconnected and
re-ran its command on the second run's VM. The CLI said "torn down" regardless, and the results
of the shards that had finished were lost. Now: the first run's commands are stopped and its links
fenced before anything is handed back, the CLI says what happened, and report.json/junit.xml keep
what finished, marked as interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.integration.test_cli import cli, finish
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair

from .test_pipeline_providers import proxmox_pool, run, suite_for

pytestmark = [pytest.mark.flows, pytest.mark.sshd]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def held_test(suite: Path, shared: Path) -> None:
    """A test that records its run and pid in ``shared`` and, while ``shared/hold`` exists, keeps running."""
    (suite.parent / "apps" / "gamma" / "tests" / "test_zz_held.py").write_text(
        "import json, os, time\n\n\ndef test_held():\n"
        f"    with open({str(shared / 'starts.jsonl')!r}, 'a') as fh:\n"
        "        fh.write(json.dumps({'run': os.environ['TESTPILOT_RUN_ID'], 'pid': os.getpid(),"
        " 'at': time.time()}) + '\\n')\n"
        f"    while os.path.exists({str(shared / 'hold')!r}):\n"
        "        time.sleep(0.2)\n")
    git(suite.parent, "add", "-A")
    git(suite.parent, "commit", "-qm", "a test that holds")


def starts(shared: Path) -> list[dict[str, Any]]:
    path = shared / "starts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_remote_run_stops_its_test_before_the_vm_is_reused(
        prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim, key: KeyPair, sig: signal.Signals) -> None:
    suite = suite_for(tmp_path, proxmox_pool(proxmox, key), only=["gamma"])
    shared = Path(tempfile.mkdtemp(prefix="tp-held-"))  # the VM's own uid writes here
    os.chmod(shared, 0o777)
    held_test(suite, shared)
    (shared / "hold").write_text("")
    results = tmp_path / "first"
    first = cli("run", "--suite", str(suite), "--full", "--results", str(results),
                env={"PREFECT_API_URL": prefect_api})
    deadline = time.monotonic() + 240
    while not starts(shared):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the held test never started"
        time.sleep(0.2)
    [held] = starts(shared)
    [vm] = proxmox.vms()
    seen_at_reset: list[bool] = []
    rollback = vm.machine.rollback

    def watched_rollback(name: str) -> None:  # the second run resets the VM before it uses it
        seen_at_reset.append(alive(held["pid"]))
        rollback(name)

    vm.machine.rollback = watched_rollback  # type: ignore[method-assign]
    first.send_signal(sig)
    second: list[Any] = []
    racer = threading.Thread(target=lambda: second.append(run(suite, tmp_path)))
    racer.start()  # competes for the pool while the first run tears down
    code, out, err = finish(first, timeout=180)
    (shared / "hold").unlink()
    racer.join(timeout=300)
    assert code == 128 + sig, (out, err)
    assert "Traceback" not in err, err
    assert f"interrupted ({sig.name}); stopped 1 running command(s); 1 environment(s) were torn down" in err
    assert not alive(held["pid"])
    assert second and second[0].is_completed(), second[0].message if second else "no second run"
    assert seen_at_reset and not any(seen_at_reset)  # every reset came after the first run's pytest was gone
    runs = [s["run"] for s in starts(shared)]
    assert runs.count(held["run"]) == 1 and len(runs) == 2  # never re-run on the second run's VM
    # The results of the interrupted run are kept: its finished tests, marked as interrupted.
    [report_file] = results.glob("*/report.json")
    report = json.loads(report_file.read_text())
    assert report["interrupted"] == sig.name
    outcomes = {r["node_id"]: r["outcome"] for r in report["results"]}
    assert outcomes.pop("tests/test_maths.py::test_double") == "passed", report["results"]  # it had finished
    assert list(outcomes.values()) == ["error"] and "test_zz_held" in next(iter(outcomes)), outcomes
    assert (report_file.parent / "junit.xml").exists()


def _drop_limits(prefix: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for limit in client.read_global_concurrency_limits(limit=200):
            if limit.name == prefix or limit.name.startswith(prefix + "-"):
                client.delete_global_concurrency_limit_by_name(limit.name)


def test_killed_run_is_declared_dead_and_everything_it_left_is_swept(
        prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim, key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client

    from flows.reaper import reaper

    try:
        suite = suite_for(tmp_path, proxmox_pool(proxmox, key), only=["gamma"])
        shared = Path(tempfile.mkdtemp(prefix="tp-held-"))
        os.chmod(shared, 0o777)
        held_test(suite, shared)
        (shared / "hold").write_text("")
        first = cli("run", "--suite", str(suite), "--full", env={"PREFECT_API_URL": prefect_api})
        deadline = time.monotonic() + 240
        while not starts(shared):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the held test never started"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)  # no finally, no hook, no teardown
        first.communicate()
        [held] = starts(shared)
        scratch = Path(os.environ["TESTPILOT_HOME"]) / "remote-sqlite"
        assert [p for p in scratch.iterdir() if p.name.endswith(held["run"])]
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(held["run"]).state_name == "Running"  # what the issue saw, 29 minutes on
        monkeypatch.setenv("TESTPILOT_ZOMBIE_AFTER", "3")  # heartbeats every 30 s in production: 90 s
        time.sleep(4)
        rows = reaper()
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(held["run"]).state
        assert state is not None and state.name == "Crashed" and "no heartbeat" in str(state.message)
        assert {"resource": held["run"], "outcome": "marked Crashed"}.items() <= next(
            r for r in rows if r["resource"] == held["run"]).items()
        assert any(r["outcome"] == "destroyed" and r["run"] == held["run"] for r in rows), rows  # its VM
        assert proxmox.vms() == [] and not alive(held["pid"])
        assert not [p for p in scratch.iterdir() if p.name.endswith(held["run"])]
        (shared / "hold").unlink()
    finally:
        # The session's test server runs no lease repossessor, so the killed run's pool slot would stay
        # taken for the later tests on pool 'remote' (a real server frees it when the lease expires).
        _drop_limits("testpilot-pool-remote")

