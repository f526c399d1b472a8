"""member_locks: a run takes its first member of a pool waiting, extra members only when free right now."""

from __future__ import annotations

import json
import threading
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from flows.pipeline import pipeline
from tasks.locks import ensure_limit, limit_name, lock_host, member_locks
from testpilot.environments.local import leftover_workdirs
from testpilot.settings import get_settings
from tests.conftest import git, make_repo

pytestmark = pytest.mark.flows


def _pool() -> str:
    return f"members-{uuid.uuid4().hex[:8]}"


def active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def holding(pool: str, size: int, wanted: int, got: dict[str, list[int]], name: str,
            hold: threading.Event, release: threading.Event) -> threading.Thread:
    """A flow run (in a thread) that takes members of ``pool`` and keeps them until ``release``."""
    @flow(name=f"members-{name}")
    def taker() -> None:
        with member_locks({pool: size}, timeout=30, lease_seconds=60, members={pool: wanted}) as held:
            got[name] = held[pool]
            hold.set()
            release.wait(60)

    thread = threading.Thread(target=taker)
    thread.start()
    return thread


def test_two_runs_take_disjoint_members_of_a_pool_of_four(prefect_api: str) -> None:
    pool = _pool()
    got: dict[str, list[int]] = {}
    first, second, release = threading.Event(), threading.Event(), threading.Event()
    threads = [holding(pool, 4, 3, got, "first", first, release)]
    try:
        assert first.wait(60)
        assert got["first"] == [0, 1, 2] and active_slots(limit_name(pool)) == 3
        # The second wants all four: it gets the one left, at once, and does not wait for the others.
        threads.append(holding(pool, 4, 4, got, "second", second, release))
        assert second.wait(60)
        assert got["second"] == [3] and active_slots(limit_name(pool)) == 4
        assert not set(got["first"]) & set(got["second"])
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
    assert active_slots(limit_name(pool)) == 0
    assert [active_slots(f"{limit_name(pool)}-slot-{i}") for i in range(4)] == [0, 0, 0, 0]


def test_a_pool_slot_without_a_free_member_is_given_back(prefect_api: str) -> None:
    """Members whose own limit is still held (a lease that outlives its pool lease) are skipped, and the
    pool slot taken for them is returned at once, not kept idle."""
    pool = _pool()
    name = limit_name(pool)
    ensure_limit(name, 4)
    with ExitStack() as others:
        for slot in (1, 2, 3):
            ensure_limit(f"{name}-slot-{slot}", 1)
            others.enter_context(concurrency(f"{name}-slot-{slot}", occupy=1, max_retries=0, lease_duration=60,
                                             strict=True))

        @flow(name="members-leftover")
        def taker() -> list[int]:
            with member_locks({pool: 4}, timeout=30, lease_seconds=60, members={pool: 4}) as held:
                assert active_slots(name) == 1  # the extra pool slot went back
                return held[pool]

        assert taker() == [0]
    assert active_slots(name) == 0


def test_a_run_spreads_its_shards_over_the_free_members_of_a_local_pool(prefect_api: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    suite = yaml.safe_load((repo / "testpilot.yaml").read_text())
    pool = _pool()
    suite["environments"] = {pool: {**suite["environments"]["local"], "pool_size": 3, "max_members": "free"}}
    (repo / "testpilot.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    git(repo, "commit", "-qam", "three members")
    state = pipeline(suite=str(repo / "testpilot.yaml"), full=True, results_dir=str(tmp_path / "results"),
                     return_state=True)
    assert state.is_completed(), state.message
    report = json.loads((tmp_path / "results" / str(state.state_details.flow_run_id) / "report.json").read_text())
    assert len(report["results"]) == 8 and {r["outcome"] for r in report["results"]} == {"passed"}
    members = report["members"]  # 4 shard nodes (alpha, beta x2, gamma) over 3 members, none left idle
    assert len(members) == 3 and all(members.values()), members  # every member held is listed
    assert sorted(s for ran in members.values() for s in ran) == ["alpha[0]", "beta[0]", "beta[1]", "gamma[0]"]
    ran_on = {(r["app"], r["shard"]): r["environment"] for r in report["results"]}
    assert all(f"{app}[{shard}]" in members[env] for (app, shard), env in ran_on.items())
    assert leftover_workdirs(get_settings().home) == []
    assert active_slots(limit_name(pool, lock_host())) == 0
