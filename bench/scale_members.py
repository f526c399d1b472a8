"""Fan-out within a run: wall time of one run on 1, 2 and 4 members of a Proxmox (simulator) pool.

    nice -n 10 uv run python bench/scale_members.py            # about 4 minutes here
    uv run python bench/scale_members.py --counts 1,4 --sleep 2  # quick check

The suite: one app of 16 sleep-bound tests (4 s each: 64 s in all) in 4 shards, on a pool of four
sshd-backed VMs behind the Proxmox simulator. Each test holds a lock of its machine while it sleeps,
as tests do that own the machine's one database, port or whole CPU: a VM runs one test at a time,
so one VM needs the whole 64 s however many shards run on it. The run's `max_members` is set to
1, 2 and 4 in turn. A warm-up run first creates the four pool members (cloned once, then rolled back
for every run, as a pool is used day to day) and installs the app on each, which leaves each member a
warm snapshot (docs/environments.md): the timed runs reset to it and skip the install, as runs do
while the requirements stay the same. The wall time is the flow run's own (Prefect's start
to end time): lock, provision (rollback, install), seed, run, report, teardown. It ends with the line
`speed-up, 4 members: N.Nx` (one member's wall time over four members').

``measure_members`` is importable with no side effects (bench/scale.py calls it); it starts its own
Prefect server unless given ``api_url``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

if not __package__:  # run as a script; imported (bench.scale_members) the repository is on the path already
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
TESTS, SHARDS, POOL_SIZE, SLEEP = 16, 4, 4, 4.0
TEST_FILE = """import fcntl, os, time
from pathlib import Path


def test_sleep_{i}():
    # One test at a time per machine: the lock lives in the run's folder on this VM.
    with open(Path.cwd().parent / ".machine.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        time.sleep(float(os.environ.get("BENCH_SLEEP", "{sleep}")))
"""


def _suite(root: Path, pool: dict[str, Any], pool_name: str, sleep: float) -> Path:
    """A git repository with one app of ``TESTS`` sleep-bound tests in ``SHARDS`` shards on ``pool_name``."""
    from tests.conftest import git

    root.mkdir(parents=True)
    app = root / "apps" / "sleepy"
    (app / "tests").mkdir(parents=True)
    (app / "requirements.txt").write_text("pytest\n")
    for i in range(TESTS):
        (app / "tests" / f"test_sleep_{i:02d}.py").write_text(TEST_FILE.format(i=i, sleep=sleep))
    suite = {"name": "scale-members",
             "apps": {"sleepy": {"path": "apps/sleepy", "test_command": "pytest {tests}", "shards": SHARDS,
                                 "environment": pool_name, "timeout": 600}},
             "environments": {pool_name: pool}}
    path = root / "testpilot.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "sleep-bound suite")
    return path


def _set_members(path: Path, pool_name: str, members: int, name: str) -> None:
    """``max_members``, and a suite name of its own: each run starts with no recorded durations (with
    one member its tests' durations include waiting for the machine's lock, which would skew the
    next run's shards)."""
    from tests.conftest import git

    suite = yaml.safe_load(path.read_text())
    suite["environments"][pool_name]["max_members"] = members
    suite["name"] = name
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    git(path.parent, "commit", "-qam", f"max_members {members}")


def _run(path: Path, results: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `testpilot run --full` as a CLI process; returns its report with the flow run's wall time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--suite", str(path), "--full",
                           "--results", str(results)], cwd=REPO, env={**os.environ, **env, **_log_level()},
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"the run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report_file = max(results.glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(report_file.read_text())
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(report_file.parent.name))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
        logs = _logs(client, run.id) if os.environ.get("BENCH_PHASES") else []
    assert run.start_time is not None and run.end_time is not None
    report["flow_run_seconds"] = (run.end_time - run.start_time).total_seconds()
    report["task_runs"] = sorted((t.name, (t.start_time - run.start_time).total_seconds(),
                                  (t.end_time - run.start_time).total_seconds())
                                 for t in tasks if t.start_time and t.end_time)
    report["log_lines"] = [((line.timestamp - run.start_time).total_seconds(), line.message[:110]) for line in logs]
    return dict(report)


def _log_level() -> dict[str, str]:
    """The run's INFO lines reach the API with BENCH_PHASES (tests.conftest, imported for its git helper,
    sets WARNING for the test suite)."""
    return {"PREFECT_LOGGING_LEVEL": "INFO"} if os.environ.get("BENCH_PHASES") else {}


def _logs(client: Any, run_id: uuid.UUID) -> list[Any]:
    """The run's log lines (they reach the API in batches, so wait a little for them)."""
    import time

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    for _ in range(20):
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        if logs:
            return list(logs)
        time.sleep(0.5)
    return []


def measure_members(counts: tuple[int, ...] = (1, 2, 4), *, sleep: float = SLEEP, api_url: str | None = None,
                    postgres: str = "", details: dict[int, dict[str, Any]] | None = None) -> dict[int, float]:
    """Wall seconds of one run of the sleep-bound suite (``TESTS`` x ``sleep`` s) per member count.

    Starts the Proxmox simulator with sshd-backed VMs (and a Prefect server unless ``api_url``),
    warms the pool up, runs once per count and stops everything again. ``postgres``: as in
    ``measure_workers``, the server's database (SQLite's write lock can stall a run's first tagged tasks ~2 s). ``details`` receives, per
    count, the members the run used and its test outcomes."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import throwaway_server_on
    from tests.sim.proxmox import ProxmoxSim
    from tests.sim.sshd import sshd_missing_reason
    from tests.sim.sshd_machines import SshdMachines

    missing = sshd_missing_reason()
    if missing:
        raise RuntimeError(f"cannot run: {missing}")
    if max(counts) > POOL_SIZE:
        raise ValueError(f"counts must be at most the pool size {POOL_SIZE}")
    scratch = Path(tempfile.mkdtemp(prefix="tp-scale-members-"))
    os.chmod(scratch, 0o755)
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "TESTPILOT_HOME", "TESTPILOT_PASS_ENV")}
    out: dict[int, float] = {}
    with ExitStack() as stack:
        stack.callback(_restore, saved)
        api = api_url or stack.enter_context(throwaway_server_on(scratch / "prefect", postgres))
        os.environ.update({"PREFECT_API_URL": api, "TESTPILOT_HOME": str(scratch / "home"),
                           "TESTPILOT_PASS_ENV": "BENCH_SLEEP"})
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api}))
        (scratch / "vms").mkdir()
        machines = SshdMachines(root=scratch / "vms")
        stack.callback(machines.close)
        sim = ProxmoxSim(machines=machines).start()
        stack.callback(sim.stop)
        pool_name = f"scale-{uuid.uuid4().hex[:6]}"
        path = _suite(scratch / "repo", _pool(sim, pool_name), pool_name, sleep)
        _set_members(path, pool_name, POOL_SIZE, "scale-members-warm-up")
        _run(path, scratch / "results", {"BENCH_SLEEP": "0"})  # warm-up: clones the four members once
        for count in counts:
            _set_members(path, pool_name, count, f"scale-members-{count}-{uuid.uuid4().hex[:6]}")
            report = _run(path, scratch / "results", {})
            outcomes = [r["outcome"] for r in report["results"]]
            if len(outcomes) != TESTS or set(outcomes) != {"passed"}:
                raise RuntimeError(f"{count} member(s): not every test passed: {outcomes}")
            out[count] = report["flow_run_seconds"]
            if details is not None:
                details[count] = {"members": report.get("members", {}), "tests": len(outcomes),
                                  "task_runs": report["task_runs"], "log_lines": report["log_lines"]}
    return out


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _pool(sim: Any, pool_name: str) -> dict[str, Any]:
    from blocks.environments import ProxmoxCluster
    from tests.remote.support import install_settings
    from tests.sim.sshd import generate_keypair

    key = generate_keypair("scale-members")
    block = f"{pool_name}-cluster"
    ProxmoxCluster(host=sim.host, token_name="testpilot", token_value="00000000-sim0-token",
                   ca_bundle=str(sim.tls.ca_bundle), ssh_public_keys=[key.public_openssh],
                   ssh_private_key=key.private_openssh).save(block, overwrite=True)
    settings = {"cluster": block, "template_vmid": 9000, "agent_timeout": 30,
                "install": install_settings().model_dump(mode="json")}
    return {"provider": "proxmox", "pool_size": POOL_SIZE, "acquire_timeout": 300, "settings": settings}


def main() -> None:
    parser = argparse.ArgumentParser(description="wall time of one run on 1, 2, 4 pool members")
    parser.add_argument("--counts", default="1,2,4", help="member counts, comma-separated (at most 4)")
    parser.add_argument("--sleep", type=float, default=SLEEP, help=f"seconds each of the {TESTS} tests sleeps")
    parser.add_argument("--postgres", default=os.environ.get("TESTPILOT_TEST_POSTGRES_URL", ""),
                        help="PostgreSQL server URL for the Prefect server's database (default: "
                        "$TESTPILOT_TEST_POSTGRES_URL; empty: SQLite)")
    args = parser.parse_args()
    counts = tuple(int(c) for c in args.counts.split(","))
    details: dict[int, dict[str, Any]] = {}
    walls = measure_members(counts, sleep=args.sleep, postgres=args.postgres, details=details)
    print(f"suite: {TESTS} tests x {args.sleep:g} s = {TESTS * args.sleep:g} s of sleep, {SHARDS} shards, "
          f"one test at a time per VM; pool of {POOL_SIZE} Proxmox (simulator) VMs")
    print(f"{'members':>7} {'used':>4} {'wall s':>7} {'speed-up':>8}  shards per member")
    base = walls.get(1) or next(iter(walls.values()))
    for count, wall in walls.items():
        used = details[count]["members"]
        spread = " ".join(f"{env}:{','.join(shards)}" for env, shards in sorted(used.items()))
        print(f"{count:>7} {len(used):>4} {wall:>7.1f} {base / wall:>7.1f}x  {spread}")
    if os.environ.get("BENCH_PHASES"):
        for count in walls:
            print(f"-- {count} member(s): task runs (start, end: seconds into the flow run)")
            for name, start, end in sorted(details[count]["task_runs"], key=lambda t: t[1]):
                print(f"   {start:6.1f} {end:6.1f}  {name}")
            print(f"-- {count} member(s): log lines (seconds into the flow run)")
            for at, message in sorted(details[count]["log_lines"]):
                print(f"   {at:6.2f}  {message}")
    if 1 in walls and 4 in walls:
        print(f"speed-up, 4 members: {walls[1] / walls[4]:.1f}x")


if __name__ == "__main__":
    main()
