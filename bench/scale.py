"""One large run on more machines, both ways, in one process: Prefect workers and pool members.

    nice -n 10 .venv/bin/python bench/scale.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
                                                    # about 20 minutes on two cores
    uv run python bench/scale.py --worker-sleep 10 --member-sleep 4   # a quicker, rougher check

1. ``execution: work-pool`` (bench/scale_workers.py): one pipeline run of a sleep-bound suite (six
   shards) whose nodes run as flow runs on 1, 2 and 3 process workers, each with its own home and clone
   (the node deployment as `python -m deployments.nodes` makes it: one process per node).
2. ``max_members`` (bench/scale_members.py): one run of a sleep-bound suite (16 tests, one at a time
   per VM) spread over 1, 2 and 4 members of a Proxmox-simulator pool of sshd-backed VMs.

Each figure is the pipeline flow run's own wall time (Prefect's start to end), so lock, provision,
seed, report and teardown are in it; the naive way is the first row of each table (one machine).
It ends with the lines ``speed-up, 3 workers: N.Nx`` and ``speed-up, 4 members: N.Nx``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale_members import SHARDS as MEMBER_SHARDS  # noqa: E402
from bench.scale_members import TESTS as MEMBER_TESTS  # noqa: E402
from bench.scale_members import measure_members  # noqa: E402
from bench.scale_workers import SHARDS as WORKER_SHARDS  # noqa: E402
from bench.scale_workers import measure_workers  # noqa: E402


def _table(title: str, unit: str, walls: dict[int, float]) -> None:
    print(title)
    print(f"{unit:>8} {'wall s':>8} {'speed-up':>9}")
    base = walls[min(walls)]
    for count, wall in walls.items():
        print(f"{count:>8} {wall:>8.1f} {base / wall:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-sleep", type=float, default=25.0, help="seconds of sleeping tests per shard "
                        f"({WORKER_SHARDS} shards; default 25: a 150 s suite)")
    parser.add_argument("--member-sleep", type=float, default=6.0, help=f"seconds each of the {MEMBER_TESTS} "
                        "tests sleeps (default 6: a 96 s suite)")
    parser.add_argument("--postgres", default=os.environ.get("TESTPILOT_TEST_POSTGRES_URL", ""),
                        help="PostgreSQL server URL for the Prefect servers' databases (default: "
                        "$TESTPILOT_TEST_POSTGRES_URL; empty: SQLite, which may answer 503 under three workers)")
    args = parser.parse_args()
    workers = measure_workers((1, 2, 3), args.worker_sleep, args.postgres)
    members = measure_members((1, 2, 4), sleep=args.member_sleep, postgres=args.postgres)
    _table(f"Nodes on a work pool: {WORKER_SHARDS} shards x {args.worker_sleep:g} s = "
           f"{WORKER_SHARDS * args.worker_sleep:g} s of tests", "workers", workers)
    _table(f"Pool members: {MEMBER_TESTS} tests x {args.member_sleep:g} s = {MEMBER_TESTS * args.member_sleep:g} s "
           f"of tests in {MEMBER_SHARDS} shards", "members", members)
    print(f"speed-up, 3 workers: {workers[1] / workers[3]:.1f}x")
    print(f"speed-up, 4 members: {members[1] / members[4]:.1f}x")


if __name__ == "__main__":
    main()
