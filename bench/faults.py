"""Fault injection: what an interrupted, killed or faulted remote run leaves behind, before and after the reaper.

    nice -n 10 uv run python bench/faults.py [--port 4350] [--only sigint,kill9-test,...]

Starts a real `prefect server start` (its lease repossessor frees a killed holder's slot), the Proxmox and
Hetzner simulators with sshd-backed VMs, and runs `testpilot run` (a real CLI process) of a small suite on
a remote pool per case, with one fault each:

- SIGINT / SIGTERM / kill -9 while a test runs (the test holds until the bench ends);
- kill -9 during provisioning (at the clone), the seed (install) phase, and teardown (at the hand-back);
- a Proxmox API 500 on clone; a Hetzner 429 storm; the VM's sshd killed while a test runs.

The kill -9 cases run concurrently (each on its own pool), since each waits out a lease (60 s minimum).
Then the reaper runs once (with `TESTPILOT_ZOMBIE_AFTER=5`: production declares a run dead after 90 s of
silence, three 30 s heartbeats). Per case it prints the leaks before and after that pass -- VMs still
owned by the run, processes carrying its run id (on the VMs and here), its folders and SQLite databases
on the worker -- the time until the pool's lock could be taken again, and whether report.json was
written. The last line is `leaks: N`, the total after the reaper's pass.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.server import throwaway_server  # noqa: E402
from tests.conftest import git, make_repo  # noqa: E402
from tests.remote.support import install_settings  # noqa: E402
from tests.sim.hetzner import HetznerSim  # noqa: E402
from tests.sim.proxmox import ProxmoxSim  # noqa: E402
from tests.sim.sshd import generate_keypair, sshd_missing_reason  # noqa: E402
from tests.sim.sshd_machines import SshdMachines  # noqa: E402

KILL9 = ("kill9-provision", "kill9-seed", "kill9-test", "kill9-teardown")
SEQUENTIAL = ("sigint", "sigterm", "api-5xx", "429-storm", "sshd-killed")
HELD = ("sigint", "sigterm", "kill9-test", "sshd-killed")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    root: Path
    suite: Path = Path()
    pool: str = ""
    provider: str = "proxmox"
    proc: subprocess.Popen[str] | None = None
    fault_at: float = 0.0
    exit_code: int | None = None
    run_id: str = ""
    lock_seconds: float = -1.0
    results_kept: bool = False
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    @property
    def shared(self) -> Path:
        return self.root / "shared"


def make_suite(case: Case, pool: dict[str, Any]) -> None:
    repo = make_repo(case.root)
    path = repo / "testpilot.yaml"
    suite = yaml.safe_load(path.read_text())
    case.pool = f"f-{case.name}"
    suite["environments"] = {case.pool: {"services": {"db": {"type": "sqlite"}}, **pool}}
    suite["apps"] = {"gamma": {**suite["apps"]["gamma"], "environment": case.pool}}
    suite["selection"] = {}
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    case.shared.mkdir()
    os.chmod(case.shared, 0o777)
    (repo / "apps" / "gamma" / "tests" / "test_zz_held.py").write_text(
        "import json, os, time\n\n\ndef test_held():\n"
        f"    with open({str(case.shared / 'starts.jsonl')!r}, 'a') as fh:\n"
        "        fh.write(json.dumps({'run': os.environ['TESTPILOT_RUN_ID'], 'pid': os.getpid()}) + '\\n')\n"
        f"    while os.path.exists({str(case.shared / 'hold')!r}):\n        time.sleep(0.2)\n")
    if case.name in HELD:
        (case.shared / "hold").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fault case")
    case.suite = path


def proxmox_pool(sim: ProxmoxSim, key: Any, name: str) -> dict[str, Any]:
    from blocks.environments import ProxmoxCluster

    ProxmoxCluster(host=sim.host, token_name="testpilot", token_value="00000000-sim0-token",
                   ca_bundle=str(sim.tls.ca_bundle), ssh_public_keys=[key.public_openssh],
                   ssh_private_key=key.private_openssh).save(name, overwrite=True)
    settings = {"cluster": name, "template_vmid": 9000, "agent_timeout": 20,
                "install": install_settings().model_dump(mode="json")}
    return {"provider": "proxmox", "pool_size": 1, "acquire_timeout": 300, "settings": settings}


def hetzner_pool(sim: HetznerSim, key: Any, name: str) -> dict[str, Any]:
    from blocks.environments import HetznerProject

    HetznerProject(token="sim-token", api_endpoint=sim.url, ssh_public_key=key.public_openssh,
                   ssh_private_key=key.private_openssh).save(name, overwrite=True)
    settings = {"project": name, "ssh_user": "testuser", "ssh_timeout": 20, "max_retries": 3,
                "install": install_settings().model_dump(mode="json")}
    return {"provider": "hetzner", "pool_size": 1, "acquire_timeout": 300, "settings": settings}


def starts(case: Case) -> list[dict[str, Any]]:
    path = case.shared / "starts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def launch(case: Case, results: Path) -> None:
    case.proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "flows.cli", "run", "--suite", str(case.suite), "--full", "--results",
         str(results)], cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(what: Callable[[], bool], case: Case, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while not what():
        if case.proc is not None and case.proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def signal_run(case: Case, sig: int) -> None:
    assert case.proc is not None
    case.fault_at = time.monotonic()
    case.proc.send_signal(sig)


def task_running(api: str, case: Case, prefix: str) -> Callable[[], bool]:
    def check() -> bool:
        body = json.dumps({"task_runs": {"name": {"like_": prefix}, "state": {"type": {"any_": ["RUNNING"]}}},
                           "flow_runs": {"id": {"any_": [case.run_id]}} if case.run_id else None}).encode()
        request = urllib.request.Request(f"{api}/task_runs/filter", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                return bool(json.loads(answer.read()))
        except OSError:  # a busy server: ask again on the next poll
            return False

    return check


def find_run(api: str, case: Case) -> str:
    body = json.dumps({"flows": {"name": {"any_": ["testpilot-pipeline"]}}, "limit": 200}).encode()
    request = urllib.request.Request(f"{api}/flow_runs/filter", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            runs = json.loads(answer.read())
    except OSError:  # a busy server: the caller asks again
        return ""
    return next((r["id"] for r in runs if r["parameters"].get("suite") == str(case.suite.resolve())), "")


def hook_proxmox(sim: ProxmoxSim, triggers: dict[str, Callable[[str, dict[str, list[str]]], None]]) -> None:
    """Call ``triggers[pool](path, params)`` on each request naming the pool (clone names, tags), in the sim."""
    handle = sim.handle

    def hooked(request: Any) -> Any:
        params = urllib.parse.parse_qs(request.body.decode(errors="replace")) if request.body else {}
        text = " ".join(v for values in params.values() for v in values)
        for pool, trigger in list(triggers.items()):
            if f"-{pool}-" in text or f"tp-pool-{pool};" in text:
                trigger(request.method + " " + request.path, params)
        return handle(request)

    sim.server._server.app = hooked  # the sim's wire server calls this for every request
    sim.server._server.handle_error = lambda *_: None  # a killed client's broken pipe is expected here


def leaks(case: Case, proxmox: ProxmoxSim, hetzner: HetznerSim, home: Path) -> dict[str, int]:
    from tests.sim.procs import pids_with_argument

    run = case.run_id
    if case.provider == "proxmox":
        # by tag, or by name: a VM cloned but not yet tagged (killed in between) has only its name
        vms = sum(1 for vm in proxmox.vms() if (f"tp-pool-{case.pool};" in vm.config.get("tags", "")
                                                or f"-{case.pool}-" in vm.config.get("name", ""))
                  and "tp-run-idle" not in vm.config.get("tags", ""))
    else:
        vms = sum(1 for s in hetzner.live_servers() if s["labels"].get("tp-pool") == case.pool
                  and s["labels"].get("tp-run") != "idle")
    procs = {pid for pid in _pids_with_env(f"TESTPILOT_RUN_ID={run}")} if run else set()
    procs |= set(pids_with_argument(str(case.root)))
    folders = [p for sub in ("remote-sqlite", "envs") for p in (home / sub).glob(f"*{run.replace('-', '')[:12]}*")] \
        + [p for p in (home / "remote-sqlite").glob(f"*{run}")] if run else []
    return {"vms": vms, "procs": len(procs), "dirs": len(set(folders))}


def _pids_with_env(entry: str) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry.encode() in environ.read_bytes().split(b"\0"):
                stat = (environ.parent / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def lock_recovery(case: Case) -> None:
    from tasks.locks import pool_locks

    try:
        with pool_locks({case.pool: 1}, timeout=300, lease_seconds=60):
            case.lock_seconds = time.monotonic() - case.fault_at
    except Exception:  # noqa: BLE001 - reported as -1
        case.lock_seconds = -1.0


def run_case(case: Case, api: str, results: Path, proxmox: ProxmoxSim, hetzner: HetznerSim,
             triggers: dict[str, Any]) -> None:
    fired = threading.Event()
    if case.name in ("kill9-provision", "kill9-teardown"):
        wanted = "/clone" if case.name == "kill9-provision" else "/config"

        def trigger(what: str, params: dict[str, list[str]]) -> None:
            tags = " ".join(params.get("tags", []))
            if wanted in what and not fired.is_set() and (wanted == "/clone" or "tp-run-idle" in tags):
                fired.set()
                signal_run(case, signal.SIGKILL)
                time.sleep(1.0)  # the hand-back is in flight when the process dies

        triggers[case.pool] = trigger
    launch(case, results)
    assert case.proc is not None
    if case.name in HELD:
        if wait_for(lambda: bool(starts(case)), case):
            if case.name == "sshd-killed":
                case.fault_at = time.monotonic()
                for vm in proxmox.vms():
                    if f"tp-pool-{case.pool};" in vm.config.get("tags", "") and vm.machine is not None:
                        vm.machine.vm.stop()  # the daemon and every session die; the reset restarts it
            else:
                signal_run(case, {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}.get(case.name, signal.SIGKILL))
    elif case.name == "kill9-seed":
        wait_for(lambda: bool(find_run(api, case)), case)
        case.run_id = find_run(api, case)
        if wait_for(task_running(api, case, "install"), case):
            signal_run(case, signal.SIGKILL)
    try:
        case.proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        case.proc.kill()
        case.proc.communicate()
    case.exit_code = case.proc.returncode
    if case.name in ("api-5xx", "429-storm"):
        case.fault_at = time.monotonic()  # the API fault ends the run: count the lock from its end
    case.run_id = case.run_id or find_run(api, case)
    case.fault_at = case.fault_at or time.monotonic()
    case.results_kept = bool(case.run_id) and (results / case.run_id / "report.json").exists()
    lock_recovery(case)


def main() -> None:
    parser = argparse.ArgumentParser(description="fault-injection matrix")
    parser.add_argument("--port", type=int, default=4350)
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    missing = sshd_missing_reason()
    if missing:
        sys.exit(f"cannot run: {missing}")
    wanted = [c for c in (*SEQUENTIAL, *KILL9) if not args.only or c in args.only.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="tp-faults-"))
    os.chmod(scratch, 0o755)
    home, results = scratch / "home", scratch / "results"
    api = f"http://127.0.0.1:{args.port}/api"
    os.environ.update({"PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "TESTPILOT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING",
                       "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", "TESTPILOT_ZOMBIE_AFTER": "5"})
    started = time.monotonic()
    server = ExitStack()
    server.enter_context(throwaway_server(scratch / "prefect", port=args.port,
                                          PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS="2"))
    (scratch / "vms").mkdir()
    machines = SshdMachines(root=scratch / "vms")
    proxmox, hetzner = ProxmoxSim(machines=machines).start(), HetznerSim(machines=machines).start()
    triggers: dict[str, Any] = {}
    hook_proxmox(proxmox, triggers)
    key = generate_keypair("faults")
    cases = [Case(name, scratch / name) for name in wanted]
    try:
        for case in cases:
            case.root.mkdir()
            if case.name == "429-storm":
                case.provider = "hetzner"
                make_suite(case, hetzner_pool(hetzner, key, f"faults-{case.name}"))
            else:
                make_suite(case, proxmox_pool(proxmox, key, f"faults-{case.name}"))
        for case in cases:
            if case.name in SEQUENTIAL:
                proxmox.faults.clone_http_500 = 1 if case.name == "api-5xx" else 0
                if case.name == "429-storm":
                    hetzner.faults.rate_limit_after, hetzner.faults.rate_limit_storm = 3, 6
                    hetzner.faults.rate_limit_reset_seconds = 0.2
                run_case(case, api, results, proxmox, hetzner, triggers)
        proxmox.faults.clone_http_500 = 0
        threads = [threading.Thread(target=run_case, args=(c, api, results, proxmox, hetzner, triggers))
                   for c in cases if c.name in KILL9]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for case in cases:
            case.before = leaks(case, proxmox, hetzner, home)
        time.sleep(6)  # past TESTPILOT_ZOMBIE_AFTER since the last kill
        from flows.reaper import reaper

        reaper()
        time.sleep(3)  # the sim's destroy tasks finish and kill the VMs' processes
        for case in cases:
            case.after = leaks(case, proxmox, hetzner, home)
    finally:
        for case in cases:
            (case.shared / "hold").unlink(missing_ok=True)
            if case.proc is not None and case.proc.poll() is None:
                case.proc.kill()
        proxmox.stop()
        hetzner.stop()
        machines.close()
        server.close()
    print(f"{'fault':<16} {'exit':>4} {'VMs':>7} {'procs':>7} {'dirs+dbs':>8} {'lock s':>7} {'results':>7}")
    print("(leaks as before -> after the reaper's pass)")
    total = 0
    for c in cases:
        pair = {k: f"{c.before.get(k, 0)}->{c.after.get(k, 0)}" for k in ("vms", "procs", "dirs")}
        total += sum(c.after.values())
        print(f"{c.name:<16} {c.exit_code if c.exit_code is not None else '-':>4} {pair['vms']:>7} "
              f"{pair['procs']:>7} {pair['dirs']:>8} {c.lock_seconds:>7.1f} {'kept' if c.results_kept else 'none':>7}")
    print(f"matrix wall time: {time.monotonic() - started:.0f}s")
    print(f"leaks: {total}")


if __name__ == "__main__":
    main()
