"""Taking and handing back a run's pool locks: one API client for every lease (``tasks/locks.py: Leases``)
against Prefect's ``concurrency()`` context manager per lease (the naive way), in one process.

    .venv/bin/python bench/locks.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

A run on four members of a pool holds eight leases: one slot of the pool's limit and one member's
one-slot limit per member. Both ways take the same eight slots with the same server calls and events;
``concurrency()`` opens a new API client for each acquisition and each release. Prints the median
seconds to take and to hand back all eight, each way, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MEMBERS = 4


def _names() -> list[str]:
    return [name for slot in range(MEMBERS) for name in ("testpilot-pool-bench", f"testpilot-pool-bench-slot-{slot}")]


def _leases(lease_seconds: float) -> tuple[float, float]:
    from tasks.locks import Leases

    start = time.perf_counter()
    leases = Leases(lease_seconds, None)
    for name in _names():
        assert leases.take(name)
    taken = time.perf_counter()
    leases.__exit__(None, None, None)
    return taken - start, time.perf_counter() - taken


def _concurrency(lease_seconds: float) -> tuple[float, float]:
    from prefect.concurrency.sync import concurrency

    start = time.perf_counter()
    stack = ExitStack()
    for name in _names():
        stack.enter_context(concurrency(name, occupy=1, max_retries=0, lease_duration=lease_seconds, strict=True))
    taken = time.perf_counter()
    stack.close()
    return taken - start, time.perf_counter() - taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("TESTPILOT_TEST_POSTGRES_URL", ""),
                        help="PostgreSQL server URL for the Prefect server's database (default SQLite)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import throwaway_server_on
    from tasks.locks import ensure_limit

    with throwaway_server_on(Path(tempfile.mkdtemp(prefix="tp-bench-locks-")), args.postgres) as api, \
            temporary_settings(updates={PREFECT_API_URL: api}):
        ensure_limit("testpilot-pool-bench", MEMBERS)
        for slot in range(MEMBERS):
            ensure_limit(f"testpilot-pool-bench-slot-{slot}", 1)
        _leases(60), _concurrency(60)  # warm-up: imports, first connections
        ours, naive = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            ours.append(_leases(60))
            naive.append(_concurrency(60))
    for what, i in (("take", 0), ("hand back", 1)):
        a, b = statistics.median(r[i] for r in ours), statistics.median(r[i] for r in naive)
        print(f"{what} {2 * MEMBERS} leases: one client {a:.3f} s, concurrency() per lease {b:.3f} s: "
              f"{b / a:.1f}x faster")


if __name__ == "__main__":
    main()
