"""Scaling over Prefect workers: one run's nodes on 1, 2 and 3 process workers (``execution: work-pool``).

    nice -n 10 .venv/bin/python bench/scale_workers.py [--counts 1,2,3] [--sleep 25] [--postgres URL]

Starts a throwaway `prefect server start` (flows/server.py), the work pool and the pipeline deployment
(`deployments.setup`, `prefect deploy --name pipeline`), and a node deployment `bench-node` on a work pool
of its own, `testpilot-bench-nodes`, as `python -m deployments.nodes` deploys one: each node starts as
one process (``--supervisor``: as prefect.yaml's `node`, through Prefect's workspace supervisor). A generated suite of one app in six shards whose tests only sleep
(6 x 2 x ``sleep``/2 s: 150 s of tests at the default 25) runs once per count: one pipeline worker, and
N node workers each with ``--limit 1`` (one node at a time, as one small machine would), each with its
own TESTPILOT_HOME. A warm-up run first (the suite's previous commit, 1 s tests; not timed) has every
worker make its clone and venv, as long-lived machines have them.
The figure is the pipeline flow run's wall time, start to end, from the API. Prints a table and
``speed-up, 3 workers: N.Nx`` (1 worker's time over 3 workers'). About 8 minutes on two cores.

``measure_workers`` is importable without side effects (bench/scale.py uses it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PREFECT = [sys.executable, "-m", "prefect"]
NODE_POOL = "testpilot-bench-nodes"
SHARDS = 6


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=bench", "-c", "user.email=b@example.invalid",
                           *args], check=True, capture_output=True, text=True).stdout


def _suite(folder: Path, sleep: float) -> Path:
    """The repository under test (its 'git server') and a checkout of it; returns the checkout's suite file."""
    origin = folder / "origin"
    tests = origin / "apps" / "sleepy" / "tests"
    tests.mkdir(parents=True)
    (origin / "testpilot.yaml").write_text(
        "name: sleepy-bench\nexecution: work-pool\nnode_deployment: testpilot-node/bench-node\n"
        f"apps:\n  sleepy: {{path: apps/sleepy, test_command: 'pytest -p no:cacheprovider {{tests}}', "
        f"shards: {SHARDS}}}\n"
        "environments:\n  local: {provider: local, pool_size: 1, acquire_timeout: 300}\n")
    (origin / "apps" / "sleepy" / "requirements.txt").write_text("pytest\n")
    _git(origin, "init", "-q", "-b", "main")
    for message, seconds in (("warm-up: short sleeps", 1.0), ("sleep-bound suite", sleep / 2)):
        for i in range(SHARDS):
            (tests / f"test_s{i}.py").write_text("import time\n" + "".join(
                f"\n\ndef test_{i}_{j}():\n    time.sleep({seconds})\n" for j in range(2)))
        _git(origin, "add", "-A")
        _git(origin, "commit", "-q", "-m", message)
    _git(folder, "clone", "-q", str(origin), str(folder / "checkout"))
    return folder / "checkout" / "testpilot.yaml"


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _deploy(folder: Path, env: dict[str, str], supervisor: bool) -> None:
    """The pipeline deployment, and ``bench-node`` on its own pool: as `deployments.nodes` deploys it
    (one process per node), or with ``supervisor`` as prefect.yaml's ``node`` (Prefect's default)."""
    import yaml

    from deployments.nodes import engine_command, node_variant

    _run([sys.executable, "-m", "deployments.setup"], env)
    _run([*PREFECT, "--no-prompt", "deploy", "--name", "pipeline"], env)
    _run([*PREFECT, "work-pool", "create", NODE_POOL, "--type", "process"], env)
    config = node_variant("bench-node", NODE_POOL, {} if supervisor else {"command": engine_command()})
    (folder / "prefect.yaml").write_text(yaml.safe_dump(config))
    _run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(folder / "prefect.yaml")], env)


@contextmanager
def _worker(env: dict[str, str], pool: str, home: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.Popen([*PREFECT, "worker", "start", "--pool", pool, "--limit", "1"], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**env, "TESTPILOT_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
                                     "TESTPILOT_WORKER_HOST": home.name, "PREFECT_WORKER_QUERY_SECONDS": "1",
                                     "PREFECT_WORKER_PREFETCH_SECONDS": "5"})
        try:
            yield proc
        finally:
            from flows.server import stop_process

            stop_process(proc, 10)  # idle by now; a worker's graceful stop can take half a minute


def _one_run(suite: Path, results: Path, head: str = "HEAD") -> float:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("testpilot-pipeline/pipeline")
        run = client.create_flow_run_from_deployment(dep.id, parameters={
            "suite": str(suite), "head": head, "full": True, "max_parallel": SHARDS, "results_dir": str(results)})
        deadline = time.monotonic() + 900
        while not (run.state and run.state.is_final()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.name} still {run.state.name if run.state else '?'} after 900 s")
            time.sleep(1)
            run = client.read_flow_run(run.id)
    if not run.state.is_completed() or not run.start_time or not run.end_time:
        raise RuntimeError(f"run {run.name} ended {run.state.name}: {run.state.message}")
    if os.environ.get("BENCH_PHASES"):
        _print_phases(run)
    return (run.end_time - run.start_time).total_seconds()


def _print_phases(run: Any) -> None:
    """BENCH_PHASES=1: where a run's time went, in seconds into the pipeline run: each node flow run's
    creation, its start (the worker picked it up and its process started), its task runs, its end."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags

    from tasks.nodes import run_tag

    def at(moment: Any) -> str:
        return f"{(moment - run.start_time).total_seconds():6.1f}" if moment else "     ?"

    with get_client(sync_client=True) as client:
        nodes = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[run_tag(str(run.id))])))
        own = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
        print(f"-- run {run.name}: {(run.end_time - run.start_time).total_seconds():.1f} s")
        for task in sorted(own, key=lambda t: str(t.start_time)):
            print(f"   {at(task.start_time)} {at(task.end_time)}  {task.name}")
        for node in sorted(nodes, key=lambda n: str(n.created)):
            print(f"   node {node.name}: created {at(node.created)}, started {at(node.start_time)}, "
                  f"ended {at(node.end_time)}")
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[node.id])))
            for task in sorted(tasks, key=lambda t: str(t.start_time)):
                print(f"      {at(task.start_time)} {at(task.end_time)}  {task.name}")


def measure_workers(counts: tuple[int, ...] = (1, 2, 3), sleep: float = 25.0,
                    postgres: str = "", supervisor: bool = False) -> dict[int, float]:
    """Wall seconds of one pipeline run of a sleep-bound suite (6 shards x ``sleep`` s) per node-worker count.
    ``postgres``: a PostgreSQL server URL (SQLAlchemy form) for the Prefect server's own database, as
    several workers need in production; else SQLite, which can answer 503 'database is locked' here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import throwaway_server_on

    figures: dict[int, float] = {}
    keep = os.environ.get("BENCH_KEEP")  # a folder to keep the servers' and workers' logs in
    with tempfile.TemporaryDirectory(prefix="testpilot-scale-workers-") as tmp:
        folder = Path(keep or tmp)
        with throwaway_server_on(folder / "server", postgres) as url, temporary_settings(updates={PREFECT_API_URL: url}):
            env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_CLI_PROMPT": "false",
                   "TESTPILOT_HOME": str(folder / "home-setup")}
            _deploy(folder, env, supervisor)
            suite = _suite(folder, sleep)
            with _worker(env, "testpilot-process", folder / "home-pipeline", folder / "pipeline.log"):
                with ExitStack() as stack:  # warm-up, not timed: each worker (one node at a time) takes one of
                    for i in range(max(counts)):  # the first nodes, so all make their clone and venv now
                        stack.enter_context(_worker(env, NODE_POOL, folder / f"home-node{i + 1}",
                                                    folder / f"node{i + 1}.log"))
                    _one_run(suite, folder / "results" / "warm-up", head="HEAD~1")
                for count in counts:
                    with ExitStack() as stack:
                        for i in range(count):
                            stack.enter_context(_worker(env, NODE_POOL, folder / f"home-node{i + 1}",
                                                        folder / f"node{i + 1}.log"))
                        figures[count] = _one_run(suite, folder / "results" / str(count))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2,3", help="node worker counts, comma-separated")
    parser.add_argument("--sleep", type=float, default=25.0, help="seconds of sleeping tests per shard")
    parser.add_argument("--postgres", default=os.environ.get("TESTPILOT_TEST_POSTGRES_URL", ""),
                        help="PostgreSQL server URL for the Prefect server's database (default: "
                        "$TESTPILOT_TEST_POSTGRES_URL; empty: SQLite)")
    parser.add_argument("--supervisor", action="store_true", help="node runs through Prefect's workspace "
                        "supervisor (prefect.yaml's `node`) instead of `deployments.nodes`' direct command")
    args = parser.parse_args()
    counts = tuple(int(c) for c in args.counts.split(","))
    figures = measure_workers(counts, args.sleep, args.postgres, args.supervisor)
    print(f"suite: {SHARDS} shards x {args.sleep:.0f} s of sleeping tests = {SHARDS * args.sleep:.0f} s serial")
    print(f"{'workers':>8} {'wall s':>8} {'speed-up':>9}")
    base = figures.get(1)
    for count, seconds in figures.items():
        print(f"{count:>8} {seconds:>8.1f} {(base / seconds if base else float('nan')):>8.2f}x")
    if base and 3 in figures:
        print(f"speed-up, 3 workers: {base / figures[3]:.1f}x")


if __name__ == "__main__":
    main()
