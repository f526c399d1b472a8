"""Remote pools under contention and under faults: every run completes or fails clearly, nothing leaks."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from testpilot.errors import InfrastructureError
from tests.conftest import git
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair

from .test_pipeline_providers import hetzner_pool, proxmox_pool, report_of, run, suite_for

pytestmark = [pytest.mark.flows, pytest.mark.sshd]


def test_ten_runs_share_a_pool_of_two(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim, key: KeyPair) -> None:
    pool = proxmox_pool(proxmox, key)
    pool["pool_size"] = 2
    suite = suite_for(tmp_path, pool, only=["gamma"])
    states: list[Any] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            states.append(run(suite, tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert len(states) == 10 and all(s.is_completed() for s in states), [s.message for s in states]
    assert 1 <= proxmox.max_holders <= 2 and proxmox.takeovers == []
    assert len(proxmox.vms()) <= 2 and proxmox.holders == {}


def _failed_clearly(state: Any, *words: str) -> str:
    assert state.is_failed()
    message = str(state.message)
    for word in words:
        assert word in message, message
    return message


def test_clone_500_fails_the_run_clearly_and_leaks_nothing(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                                           key: KeyPair) -> None:
    proxmox.faults.clone_http_500 = 1
    state = run(suite_for(tmp_path, proxmox_pool(proxmox, key), only=["gamma"]), tmp_path)
    _failed_clearly(state, "ProvisioningError", "clone", "500")
    assert proxmox.vms() == []


def test_agent_that_never_comes_up(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim, key: KeyPair) -> None:
    proxmox.faults.agent_never_up = True
    state = run(suite_for(tmp_path, proxmox_pool(proxmox, key, agent_timeout=3), only=["gamma"]), tmp_path)
    _failed_clearly(state, "guest agent", "qemu-guest-agent")
    assert proxmox.vms() == []


def test_429_storm(prefect_api: str, tmp_path: Path, hetzner: HetznerSim, key: KeyPair) -> None:
    hetzner.faults.rate_limit_after = 3  # the SSH key and the server are made, then the storm
    hetzner.faults.rate_limit_storm = 6
    hetzner.faults.rate_limit_reset_seconds = 0.2
    state = run(suite_for(tmp_path, hetzner_pool(hetzner, key, max_retries=3), only=["gamma"]), tmp_path)
    _failed_clearly(state, "rate_limit_exceeded")
    assert hetzner.live_servers() == []


def test_ssh_drop_in_the_middle_of_a_run(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                         key: KeyPair) -> None:
    suite = suite_for(tmp_path, proxmox_pool(proxmox, key), only=["gamma"])
    (suite.parent / "apps" / "gamma" / "tests" / "test_zz_long.py").write_text(  # runs after the quick ones
        "import os\nimport pathlib\nimport time\n\n\ndef test_long():\n"
        "    pathlib.Path(os.environ['HOME'], 'drop-me').write_text('now')\n    time.sleep(30)\n")
    git(suite.parent, "add", "-A")
    git(suite.parent, "commit", "-qm", "a long test")
    drops: list[float] = []
    stop = threading.Event()

    def dropper() -> None:  # drops every session each time the test starts: the run and its one re-run
        while not stop.is_set() and len(drops) < 2:
            for vm in proxmox.vms():
                marker = vm.machine.vm.home / "drop-me" if vm.machine is not None else None
                if marker is not None and marker.exists():
                    marker.unlink()
                    vm.machine.vm.drop_connections()
                    drops.append(time.monotonic())
            time.sleep(0.05)

    watcher = threading.Thread(target=dropper, daemon=True)
    watcher.start()
    try:
        state = run(suite, tmp_path)
    finally:
        stop.set()
        watcher.join()
    assert state.is_failed() and len(drops) == 2
    error = state.result(raise_on_failure=False)  # the CLI's exit code comes from it: 3, not 1
    assert isinstance(error, InfrastructureError) and error.exit_code == 3, error
    report = report_of(state)
    lost = [r for r in report["results"] if r["outcome"] == "error"]
    assert [r["node_id"] for r in lost] == ["tests/test_zz_long.py"]  # the one that never finished
    assert all(r["message"].startswith("InfrastructureError:") for r in lost)
    passed = [r["node_id"] for r in report["results"] if r["outcome"] == "passed"]
    assert passed == ["tests/test_maths.py::test_double"]  # what had passed stays passed
    assert "reconnect" in lost[0]["message"]
    assert {c["category"] for c in report["clusters"]["clusters"]} == {"environment"}
    kinds = [t.type for t in proxmox.tasks.values()]
    assert kinds.count("qmrollback") == 1 and proxmox.holders == {}  # dirty: reset on hand-back
