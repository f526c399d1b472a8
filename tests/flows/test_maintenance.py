"""Maintenance against a real Prefect server: pool limits are never resized by a run, idle ones are pruned; the zombie automation."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from flows.maintenance import prune_pool_limits
from tasks.locks import ensure_limit

pytestmark = pytest.mark.flows


def test_a_run_does_not_resize_a_shared_pool(prefect_api: str, caplog: pytest.LogCaptureFixture) -> None:
    name = f"testpilot-pool-shared-{uuid.uuid4().hex[:6]}"
    ensure_limit(name, 3)  # the first creator (or deployments.setup) sets the size
    with caplog.at_level(logging.WARNING, logger="testpilot.locks"):
        ensure_limit(name, 1)  # before: resized to 1 under the other suites' runs
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 3
    assert "keeping 3" in caplog.text


def test_idle_pool_limits_are_pruned_and_held_ones_kept(prefect_api: str) -> None:
    idle, held = (f"testpilot-pool-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("idle", "held"))
    ensure_limit(idle, 1)
    ensure_limit(held, 1)
    with get_client(sync_client=True) as client:
        client.increment_concurrency_slots_with_lease(names=[held], slots=1, mode="concurrency",
                                                      lease_duration=60)
        removed = prune_pool_limits(idle=timedelta(seconds=0))
        names = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
        client.update_global_concurrency_limit(held, GlobalConcurrencyLimitUpdate(active_slots=0))
    assert idle in removed and idle not in names
    assert held not in removed and held in names


def test_zombie_automation_is_created_once(prefect_api: str) -> None:
    from prefect.automations import Automation

    from deployments.zombies import NAME, ensure_zombie_automation

    first, again = ensure_zombie_automation(), ensure_zombie_automation()
    automation = Automation.read(name=NAME)
    assert (first, again) == (True, False)
    assert automation.trigger.posture == "Proactive" and automation.actions[0].state == "CRASHED"
