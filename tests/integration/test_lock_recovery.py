"""A run holding a pool's only slot is killed with SIGKILL; the next run gets the slot through lease
expiry alone, with nobody cleaning up by hand."""

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import commit_change, make_repo
from tests.integration.test_cli import _timeline, cli, finish


@contextmanager
def _records(name: str) -> Iterator[list[logging.LogRecord]]:
    """The logger's records, from a handler of our own: Prefect's logging set-up replaces the root
    handlers (caplog's too) and binds its console to whichever stderr came first (capfd misses it in CI)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


pytestmark = [pytest.mark.flows, pytest.mark.slow]
LEASE = 60  # Prefect's minimum lease


def test_killed_holder_loses_its_slot_when_the_lease_expires(full_server, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    suite = repo / "testpilot.yaml"
    suite.write_text(suite.read_text().replace("acquire_timeout: 120", "acquire_timeout: 240"))
    timeline = tmp_path / "timeline.jsonl"
    envs = Path(os.environ["TESTPILOT_HOME"]) / "envs"
    before = set(envs.iterdir()) if envs.exists() else set()
    api = {"PREFECT_API_URL": full_server}
    holder = cli("run", "--suite", str(suite), env={**api, "MINISUITE_DELAY": "600",
                                                    "MINISUITE_TIMELINE": str(timeline)})
    deadline = time.monotonic() + 120
    while not (envs.exists() and set(envs.iterdir()) - before):
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline, "the first run never provisioned"
        time.sleep(0.2)
    time.sleep(2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.time()
    orphaned = sorted(set(envs.iterdir()) - before)
    for folder in orphaned:  # the killed run's test process lives on; it must not block the slot
        subprocess.run(["pkill", "-9", "-f", str(folder)], check=False)
    second = cli("run", "--suite", str(suite), env={**api, "MINISUITE_TIMELINE": str(timeline)})
    code, out, err = finish(second, timeout=400)
    assert code == 0, out + err
    starts = [row["start"] for row in _timeline(timeline)]
    assert starts, "the second run ran no tests"
    waited = min(starts) - killed_at
    assert waited < LEASE + 60, f"slot came back after {waited:.0f}s; the lease is {LEASE}s"
    print(f"slot recovered {waited:.0f}s after SIGKILL (lease {LEASE}s)")


def test_a_slot_no_run_holds_is_waited_out_not_reported_as_busy(full_server):
    """A slot taken with a lease but no holder on record (what a lost answer to an acquisition
    leaves behind) outlasts the acquire timeout; the run waits for the lease to expire instead
    of failing with 'held by: unknown'."""
    from prefect import flow
    from prefect.client.orchestration import get_client

    from tasks.locks import ensure_limit, limit_name, pool_locks
    from tests.integration.conftest import api_url

    with api_url(full_server):
        name = limit_name("orphaned")
        ensure_limit(name, 1)
        with get_client(sync_client=True) as client:  # acquired, never renewed, never announced
            client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency",
                                                          lease_duration=LEASE)

        @flow(name="orphan-waiter")
        def waiter() -> str:
            with pool_locks({"orphaned": 1}, timeout=3, lease_seconds=LEASE) as slots:
                return f"slot {slots['orphaned']}"

        started = time.monotonic()
        with _records("testpilot.locks") as records:
            assert waiter() == "slot 0"
    assert time.monotonic() - started > 3  # it really was held past the first timeout
    warnings = [r.getMessage() for r in records]
    assert any("no running flow run holds one" in message for message in warnings), warnings
