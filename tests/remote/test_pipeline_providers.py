"""The whole pipeline on each remote provider, against the simulators over the wire.

Every simulated VM or server is a real sshd on its own 127.x address; the pipeline provisions it
through the real proxmoxer / hcloud clients (or takes a registered SSH machine), uploads and installs
the apps over SSH, runs the tests there with their output streamed into the Prefect log, and hands
the environment back to its pool. Blocks are saved to, and loaded from, the real Prefect API.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.sorting import LogSort

from blocks.environments import HetznerProject, ProxmoxCluster, SSHMachine
from flows.pipeline import pipeline
from tasks.records import load_records
from testpilot.suite import load_suite
from tests.conftest import commit_change, git, make_repo
from tests.integration.test_cli import cli, finish
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair, SSHDFarm

from .support import install_settings, remote_suite

pytestmark = [pytest.mark.flows, pytest.mark.sshd, pytest.mark.usefixtures("run_logs_at_info")]
ALL_TESTS = 8  # minisuite: alpha 3, beta 3 (two shards), gamma 2


def _name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def proxmox_pool(sim: ProxmoxSim, key: KeyPair, **spec: Any) -> dict[str, Any]:
    name = _name("pve")
    ProxmoxCluster(host=sim.host, token_name="testpilot", token_value="00000000-sim0-token",
                   ca_bundle=str(sim.tls.ca_bundle), ssh_public_keys=[key.public_openssh],
                   ssh_private_key=key.private_openssh).save(name)
    settings = {"cluster": name, "template_vmid": 9000, "agent_timeout": 20, "install": _install(), **spec}
    return {"provider": "proxmox", "pool_size": 1, "acquire_timeout": 240, "settings": settings}


def hetzner_pool(sim: HetznerSim, key: KeyPair, **spec: Any) -> dict[str, Any]:
    name = _name("hcloud")
    HetznerProject(token="sim-token", api_endpoint=sim.url, ssh_public_key=key.public_openssh,
                   ssh_private_key=key.private_openssh).save(name)
    settings = {"project": name, "ssh_user": "testuser", "ssh_timeout": 20, "install": _install(), **spec}
    return {"provider": "hetzner", "pool_size": 1, "acquire_timeout": 240, "settings": settings}


def _install() -> dict[str, Any]:
    return install_settings().model_dump(mode="json")


def suite_for(tmp_path: Path, pool: dict[str, Any], only: list[str] | None = None) -> Path:
    repo = make_repo(tmp_path)
    path = remote_suite(repo, pool, only=only)
    git(repo, "commit", "-qam", "run remotely")
    return path


def run(suite: Path, tmp_path: Path) -> Any:
    return pipeline(suite=str(suite), full=True, results_dir=str(tmp_path / "results"), return_state=True)


def report_of(state: Any) -> dict[str, Any]:
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    path = Path(flow_run.parameters["results_dir"]) / str(run_id) / "report.json"
    return dict(json.loads(path.read_text()))


def logs_of(state: Any, expect: str) -> list[str]:
    """The run's log lines from the API, once a line containing ``expect`` has arrived (logs ship in batches)."""
    deadline = time.monotonic() + 60
    while True:
        lines: list[str] = []
        with get_client(sync_client=True) as client:
            while True:  # the API hands out at most 200 a page
                page = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                    any_=[state.state_details.flow_run_id])), sort=LogSort.TIMESTAMP_ASC, limit=200,
                    offset=len(lines))
                lines += [entry.message for entry in page]
                if len(page) < 200:
                    break
        if any(expect in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def assert_all_passed(state: Any, tests: int = ALL_TESTS) -> dict[str, Any]:
    assert state.is_completed(), state.message
    report = report_of(state)
    outcomes = [r["outcome"] for r in report["results"]]
    assert len(outcomes) == tests and set(outcomes) == {"passed"}, report["results"]
    assert all(r["host"].startswith("127.") and r["host"] != "127.0.0.1" for r in report["results"])
    logs = logs_of(state, " passed in ")
    assert any(" passed in " in line for line in logs), logs[:60]  # pytest's own lines, from the VM
    assert any(line.startswith("installed ") for line in logs)
    return report


def test_pipeline_on_proxmox_provisions_then_resets(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                                    key: KeyPair) -> None:
    suite = suite_for(tmp_path, proxmox_pool(proxmox, key))
    first = run(suite, tmp_path)
    assert_all_passed(first)
    [vm] = proxmox.vms()
    [warm] = [s["name"] for s in vm.snapshots if s["name"] != "tp-baseline"]  # the apps installed, kept
    assert "tp-run-idle" in vm.config["tags"] and warm.startswith("tp-warm-")
    assert any(f"saved as snapshot {warm}" in line for line in logs_of(first, warm))
    # The next commit drops a test file: the member is reset to the warm snapshot, the install is skipped,
    # and the sources are this commit's (the snapshot's copy of the deleted file is gone).
    git(suite.parent, "rm", "-q", "apps/alpha/tests/test_names.py")
    git(suite.parent, "commit", "-qm", "drop a test file")
    second = run(suite, tmp_path)
    assert_all_passed(second, tests=ALL_TESTS - 1)
    sources = vm.machine.vm.home / "testpilot" / "alpha" / "tests"
    assert (sources / "test_prices.py").is_file() and not (sources / "test_names.py").exists()
    assert any("install skipped" in line for line in logs_of(second, "install skipped"))
    kinds = [t.type for t in proxmox.tasks.values()]
    assert kinds.count("qmclone") == 1 and kinds.count("qmrollback") == 1 and kinds.count("qmsnapshot") == 2
    # New requirements: reset to the baseline, installed again, a new warm snapshot replaces the old one.
    (suite.parent / "apps" / "alpha" / "requirements.txt").write_text("pytest\niniconfig\n")
    git(suite.parent, "commit", "-qam", "alpha needs iniconfig")
    assert_all_passed(run(suite, tmp_path), tests=ALL_TESTS - 1)
    names = [s["name"] for s in vm.snapshots]
    assert len(names) == 2 and names[0] == "tp-baseline" and names[1].startswith("tp-warm-") and names[1] != warm
    assert [v.vmid for v in proxmox.vms()] == [vm.vmid] and proxmox.holders == {}


def test_pipeline_on_hetzner(prefect_api: str, tmp_path: Path, hetzner: HetznerSim, key: KeyPair) -> None:
    suite = suite_for(tmp_path, hetzner_pool(hetzner, key))
    assert_all_passed(run(suite, tmp_path))
    assert_all_passed(run(suite, tmp_path))  # rebuilt from its baseline snapshot, not created again
    [server] = hetzner.live_servers()
    assert server["labels"]["tp-run"] == "idle"
    assert sum(1 for a in hetzner.actions.values() if a["command"] == "create_server") == 1
    assert sum(1 for a in hetzner.actions.values() if a["command"] == "rebuild_server") == 1


def test_pipeline_on_ssh_machines(prefect_api: str, tmp_path: Path, sshd_farm: SSHDFarm, key: KeyPair) -> None:
    names = []
    for i in range(2):
        vm = sshd_farm.create_vm(f"box{i}", authorized_keys=[key.public_openssh])
        names.append(_name(f"box{i}"))
        SSHMachine(host=vm.address, port=vm.port, user=vm.user, host_key=vm.host_key,
                   private_key=key.private_openssh).save(names[-1])
    suite = suite_for(tmp_path, {"provider": "ssh", "pool_size": 2, "acquire_timeout": 240,
                                 "settings": {"machines": names, "poll_interval": 0.2, "install": _install()}})
    assert_all_passed(run(suite, tmp_path))
    # Each shard recorded on its host what every test ran; the record came back and is stored for the commit.
    records = load_records(load_suite(suite), "HEAD")
    assert set(records) == {"alpha", "beta", "gamma"}
    assert records["alpha"].deps("tests/test_prices.py::test_total", "units") == [
        "apps/alpha/src/alpha/prices.py::total"]
    for vm in sshd_farm.vms.values():
        runs = vm.home / "testpilot-runs"
        assert not runs.exists() or list(runs.iterdir()) == []  # the run's folder is gone from the host


def test_a_remote_run_tests_the_head_commit_not_the_checkout(prefect_api: str, tmp_path: Path, sshd_farm: SSHDFarm,
                                                             key: KeyPair) -> None:
    """The checkout holds the fix; asked for base..break, the SSH machine gets and runs the breaking commit."""
    vm = sshd_farm.create_vm("box", authorized_keys=[key.public_openssh])
    name = _name("box")
    SSHMachine(host=vm.address, port=vm.port, user=vm.user, host_key=vm.host_key,
               private_key=key.private_openssh).save(name)
    suite = suite_for(tmp_path, {"provider": "ssh", "pool_size": 1, "acquire_timeout": 240,
                                 "settings": {"machines": [name], "poll_interval": 0.2, "install": _install()}},
                      only=["alpha"])
    repo = suite.parent
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "price * qty * 2", "break total")
    broken = git(repo, "rev-parse", "HEAD").strip()
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty * 2", "price * qty", "fix total")
    code, out, err = finish(cli("run", "--suite", str(suite), "--base", "HEAD~2", "--head", "HEAD~1",
                                "--results", str(tmp_path / "results")), timeout=500)
    assert code == 1, (out, err)
    failing = "alpha::tests/test_prices.py::test_total"
    assert f"FAILED {failing} (owner: alpha-team" in out and f"Tested commit {broken} (head=HEAD~1)" in out, out
    [report] = (tmp_path / "results").glob("*/report.json")
    data = json.loads(report.read_text())
    assert data["head_commit"] == broken and data["source"]["commit"] == broken
    [failure] = data["failures"]
    assert f"{failure['app']}::{failure['node_id']}" == failing and failure["message"] == "assert 14 == 7"  # * 2
    assert data["results"] and {(r["host"], r["commit"]) for r in data["results"]} == {(vm.address, broken)}
    assert "* 2" not in (repo / "apps/alpha/src/alpha/prices.py").read_text()  # the checkout holds the fix
    runs = vm.home / "testpilot-runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_abort_pattern_stops_the_run_marks_the_vm_dirty_and_resets_it(prefect_api: str, tmp_path: Path,
                                                                       proxmox: ProxmoxSim, key: KeyPair) -> None:
    suite = suite_for(tmp_path, proxmox_pool(proxmox, key), only=["gamma"])
    panic = suite.parent / "apps" / "gamma" / "tests" / "test_panic.py"
    panic.write_text("import time\n\n\ndef test_guest_panics():\n"
                     "    print(f'T={time.time():.3f} Kernel panic - not syncing: Fatal exception', flush=True)\n"
                     "    time.sleep(60)\n")
    git(suite.parent, "add", "-A")
    git(suite.parent, "commit", "-qm", "a guest that panics")
    started = time.monotonic()
    state = run(suite, tmp_path)
    assert state.is_failed() and time.monotonic() - started < 55
    report = report_of(state)
    [aborted] = [r for r in report["results"] if r["node_id"].startswith("tests/test_panic.py")]
    assert aborted["message"].startswith("StreamAbort: kernel_panic:")
    panicked_at = float(aborted["message"].split("T=", 1)[1].split()[0])
    [shard] = _task_runs(state, "app:gamma")  # the graph node that ran the shard
    assert shard.end_time is not None and shard.end_time.timestamp() - panicked_at < 2.0
    [cluster] = report["clusters"]["clusters"]
    assert cluster["defect_type"] == "system" and cluster["category"] == "environment"
    # Dirty: reset (rolled back) when handed back, before anyone else gets it.
    kinds = [t.type for t in proxmox.tasks.values()]
    assert kinds.count("qmrollback") == 1 and proxmox.holders == {}


def _task_runs(state: Any, name: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        return list(client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=name))))
