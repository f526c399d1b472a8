"""The lock table names the run holding a pool's slot and the run waiting for it."""

import threading
import time

import pytest
from prefect import flow, tags

from tasks.locks import pool_locks, publish_locks

pytestmark = pytest.mark.flows


def test_lock_table_names_holder_and_waiter_with_links(prefect_api):
    holding, release, names = threading.Event(), threading.Event(), {}

    @flow(name="view-holder")
    def holder() -> None:
        from prefect.runtime import flow_run

        names["holder"] = (flow_run.name, str(flow_run.id))
        with pool_locks({"viewpool": 1}, timeout=30, lease_seconds=60):
            holding.set()
            release.wait(60)

    @flow(name="view-waiter")
    def waiter() -> None:
        from prefect.runtime import flow_run

        names["waiter"] = (flow_run.name, str(flow_run.id))
        with pool_locks({"viewpool": 1}, timeout=60, lease_seconds=60):
            pass

    @flow(name="view-locks")
    def look() -> str:
        return publish_locks({"viewpool": 1}, "http://ui")

    def tagged(fn):
        def run() -> None:
            with tags("pool:viewpool"):  # what the pipeline tags its runs with
                fn()
        return threading.Thread(target=run)

    threads = [tagged(holder)]
    threads[0].start()
    try:
        assert holding.wait(30)
        threads.append(tagged(waiter))
        threads[1].start()
        deadline = time.monotonic() + 30
        while True:  # until the acquisition event and the waiter's run have reached the server
            row = next(line for line in look().splitlines() if line.startswith("| viewpool |"))
            held, waiting = row.split(" | ")[2:4]
            if ("waiter" in names and names["waiter"][0] in waiting and held != "-") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert f"[{names['holder'][0]} (Running)](http://ui/runs/flow-run/{names['holder'][1]})" == held
        assert f"[{names['waiter'][0]} (Running)](http://ui/runs/flow-run/{names['waiter'][1]})" in waiting
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
