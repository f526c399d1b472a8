"""Fan-out within a run on the Proxmox simulator: one run on all four VMs of a pool at once, two runs
sharing the pool without ever sharing a VM, and Ctrl-C in the middle of a fanned-out run.

Every VM is a real sshd on its own 127.x address; the tests record, from inside each VM, which run
and which environment ran them and when (MINISUITE_TIMELINE, or a start file for held tests).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import git, make_repo
from tests.integration.test_cli import cli, finish
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair

from .support import remote_suite
from .test_interruptions import alive
from .test_pipeline_providers import logs_of, proxmox_pool, report_of, run

pytestmark = [pytest.mark.flows, pytest.mark.sshd, pytest.mark.slow]
SHARDS = 4
HELD = """import json, os, time


def test_part():
    with open({starts!r}, 'a') as fh:
        fh.write(json.dumps({{'run': os.environ['TESTPILOT_RUN_ID'], 'env': os.environ['TESTPILOT_ENV_ID'],
                             'pid': os.getpid(), 'at': time.time()}}) + '\\n')
    while os.path.exists({hold!r}):
        time.sleep(0.2)
"""


def shared_folder() -> Path:
    """A folder every simulated VM (each its own uid) can write, with files they can all append to."""
    folder = Path(tempfile.mkdtemp(prefix="tp-fanout-"))
    os.chmod(folder, 0o777)
    for name in ("timeline.jsonl", "starts.jsonl"):
        (folder / name).touch(mode=0o666)
        os.chmod(folder / name, 0o666)
    return folder


def fanout_suite(folder: Path, pool: dict[str, Any], pool_name: str, members: int | str,
                 held: Path | None = None) -> Path:
    """The minisuite's gamma alone, as four test files in four shards, on the Proxmox pool ``pool_name``
    (pool_size 4). With ``held``, every test records its start there and runs while ``held/hold`` exists."""
    folder.mkdir(parents=True, exist_ok=True)
    repo = make_repo(folder)
    path = remote_suite(repo, pool, only=["gamma"])
    suite = yaml.safe_load(path.read_text())
    suite["environments"] = {pool_name: {**suite["environments"]["remote"], "pool_size": 4, "max_members": members}}
    suite["apps"]["gamma"].update(environment=pool_name, shards=SHARDS)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    tests = repo / "apps" / "gamma" / "tests"
    (tests / "test_maths.py").unlink()
    for part in range(SHARDS):
        body = ("def test_part():\n    pass\n" if held is None else
                HELD.format(starts=str(held / "starts.jsonl"), hold=str(held / "hold")))
        (tests / f"test_part_{part}.py").write_text(body)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "four shards on a pool of four")
    return path


def records(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines() if line.strip()]


def by_run(starts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """run id -> the environments its held tests started on."""
    out: dict[str, set[str]] = {}
    for start in starts:
        out.setdefault(start["run"], set()).add(start["env"])
    return out


def release_when(shared: Path, ready: Any, still_running: Any) -> list[dict[str, Any]]:
    """Keep the held tests held until ``ready(starts)``, then let them all finish; the starts seen then."""
    deadline = time.monotonic() + 300
    try:
        while not ready(starts := records(shared, "starts.jsonl")):
            assert still_running(), starts
            assert time.monotonic() < deadline, starts
            time.sleep(0.2)
        return starts
    finally:
        (shared / "hold").unlink()


def pool_is_back(proxmox: ProxmoxSim) -> None:
    """No VM is held any more, every VM is a tagged idle pool member, and no VM ever changed hands while held."""
    assert proxmox.holders == {} and proxmox.takeovers == []
    vms = proxmox.vms()
    assert len(vms) == 4 and all("tp-run-idle" in vm.config["tags"] for vm in vms), [vm.config for vm in vms]


def test_one_run_uses_all_four_vms_of_the_pool_at_once(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                                       key: KeyPair) -> None:
    """Every test is held until four are running: the run provably uses four VMs at once, however
    unevenly the members come up."""
    shared = shared_folder()
    (shared / "hold").write_text("")
    suite = fanout_suite(tmp_path, proxmox_pool(proxmox, key), f"fan-{uuid.uuid4().hex[:6]}", "free", held=shared)
    with ThreadPoolExecutor(1) as executor:
        running = executor.submit(run, suite, tmp_path)
        held = release_when(shared, lambda starts: len(starts) >= SHARDS, lambda: not running.done())
        state = running.result(timeout=400)
    assert state.is_completed(), state.message
    assert len(held) == 4 and len({s["env"] for s in held}) == 4, held  # four distinct VMs at once
    report = report_of(state)
    assert {r["outcome"] for r in report["results"]} == {"passed"} and len(report["results"]) == 4
    assert set(report["members"]) == {s["env"] for s in held}
    assert sorted(s for shards in report["members"].values() for s in shards) == [f"gamma[{i}]" for i in range(4)]
    assert proxmox.max_holders == 4
    pool_is_back(proxmox)


def test_two_concurrent_runs_share_the_pool_without_sharing_a_vm(prefect_api: str, tmp_path: Path,
                                                                 proxmox: ProxmoxSim, key: KeyPair) -> None:
    """Every test is held until both runs have a test running on each of their two members: the runs
    provably overlap however slowly either starts, and the four held tests name four distinct VMs."""
    shared = shared_folder()
    (shared / "hold").write_text("")
    pool, name = proxmox_pool(proxmox, key), f"fan-{uuid.uuid4().hex[:6]}"
    procs = [cli("run", "--suite", str(fanout_suite(tmp_path / who, pool, name, 2, held=shared)), "--full",
                 "--results", str(tmp_path / who / "results"), env={"PREFECT_API_URL": prefect_api})
             for who in ("a", "b")]
    both = release_when(shared, lambda starts: [len(envs) for envs in by_run(starts).values()] == [2, 2],
                        lambda: all(proc.poll() is None for proc in procs))
    for proc in procs:
        code, out, err = finish(proc, timeout=400)
        assert code == 0, (out, err)
    first, second = by_run(both).values()  # both runs held a test on each of two VMs at the same time
    assert not first & second, both  # no VM shared between the runs
    everything = by_run(records(shared, "starts.jsonl"))
    assert list(everything.values()) == [first, second], everything  # later tests stayed on their run's VMs
    assert proxmox.max_holders == 4
    pool_is_back(proxmox)


def test_ctrl_c_during_a_fanned_out_run_hands_every_vm_back(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                                            key: KeyPair) -> None:
    shared = shared_folder()
    (shared / "hold").write_text("")
    suite = fanout_suite(tmp_path, proxmox_pool(proxmox, key), f"fan-{uuid.uuid4().hex[:6]}", 4, held=shared)
    proc = cli("run", "--suite", str(suite), "--full", "--results", str(tmp_path / "results"),
               env={"PREFECT_API_URL": prefect_api})
    deadline = time.monotonic() + 300
    while len(records(shared, "starts.jsonl")) < SHARDS:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, records(shared, "starts.jsonl")
        time.sleep(0.2)
    started = records(shared, "starts.jsonl")
    assert len({s["env"] for s in started}) == 4  # running on four VMs when interrupted
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=240)
    (shared / "hold").unlink()
    assert code == 128 + signal.SIGINT, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted (SIGINT); stopped " in err and "; 4 environment(s) were torn down" in err, err
    assert not any(alive(s["pid"]) for s in started)
    pool_is_back(proxmox)
    kinds = [t.type for t in proxmox.tasks.values()]
    assert kinds.count("qmrollback") == 4  # each VM was reset: its tests were killed half way
    [report] = (tmp_path / "results").glob("*/report.json")
    assert json.loads(report.read_text())["interrupted"] == "SIGINT"


def test_an_extra_member_that_fails_to_come_up_is_left_out(prefect_api: str, tmp_path: Path, proxmox: ProxmoxSim,
                                                         key: KeyPair) -> None:
    pool, name = proxmox_pool(proxmox, key), f"fan-{uuid.uuid4().hex[:6]}"
    single = fanout_suite(tmp_path / "one", pool, name, 1)
    assert run(single, tmp_path).is_completed()  # member 0 exists now: the next run rolls it back
    proxmox.faults.clone_http_500 = 1  # member 1 is cloned for the first time, and that fails
    state = run(fanout_suite(tmp_path / "two", pool, name, 2), tmp_path)
    assert state.is_completed(), state.message
    report = report_of(state)
    assert len(report["members"]) == 1 and len(report["results"]) == 4
    assert any("an extra member of pool" in line and "is not used" in line
               for line in logs_of(state, "is not used"))
    assert proxmox.holders == {} and len(proxmox.vms()) == 1  # the failed clone left nothing
