"""Pool locks on Prefect global concurrency limits: one limit per environment pool.

The limit has as many slots as the pool has environments. Slots are leases: the holder's process
renews them, so a holder that dies (even ``kill -9``) loses its slot when the lease expires and no
lock ever needs manual clean-up. Who holds a slot is read back from Prefect's own event store
(``prefect.concurrency-limit.acquired`` events carry the holding flow run), not from a store of ours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types._datetime import now

from testpilot.errors import LockTimeout


def limit_name(pool: str) -> str:
    return "testpilot-pool-" + re.sub(r"[^a-z0-9-]", "-", pool.lower())


def ensure_pool_limit(pool: str, slots: int) -> None:
    """Create the pool's limit, or resize it to ``slots``; safe to call on every run."""
    ensure_limit(limit_name(pool), slots)


def ensure_limit(name: str, slots: int) -> None:
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:
                pass  # another run created it a moment ago
            return
        if current.limit != slots or not current.active:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots, active=True))


def current_holders(pool: str, window: timedelta = timedelta(hours=12), max_pages: int = 20) -> list[str]:
    """Flow runs that acquired the pool's slot, have not released it, and are still running."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    name = limit_name(pool)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        page = client.read_events(filter=EventFilter(
            occurred=EventOccurredFilter(since=now("UTC") - window),
            event=EventNameFilter(prefix=["prefect.concurrency-limit."]),
            resource=EventResourceFilter(id=[f"prefect.concurrency-limit.{limit.id}"])), limit=50)
        events = list(page.events)
        for _ in range(max_pages - 1):
            if not page.next_page:
                break
            page = client.read_events_page(str(page.next_page))
            events.extend(page.events)
        acquired = {e.id: e for e in events if e.event.endswith(".acquired")}
        for event in events:
            if event.event.endswith(".released") and event.follows in acquired:
                acquired.pop(event.follows)
        holders = []
        for event in acquired.values():
            run_ids = [r.id.rsplit(".", 1)[-1] for r in event.related if r.role == "flow-run"]
            for run_id in run_ids:
                run = client.read_flow_run(UUID(run_id))
                if run.state and not run.state.is_final():
                    holders.append(f"{run.name} ({run_id}, {run.state.name})")
        return holders


def slot_limit_name(pool: str, slot: int) -> str:
    return f"{limit_name(pool)}-slot-{slot}"


@contextmanager
def pool_locks(pools: dict[str, int], *, timeout: float, lease_seconds: float) -> Iterator[dict[str, int]]:
    """Hold one slot of every named pool (in sorted order, so two runs can never deadlock).

    Yields which member (slot number) of each pool this run holds. The pool's limit says *that* a run
    may use an environment; a one-slot limit per member says *which* one, so two runs never get the
    same VM. Both are leases: a killed holder's member comes back when its lease expires.
    """
    context = FlowRunContext.get()
    holder = ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id) if context and context.flow_run else None
    slots: dict[str, int] = {}
    with ExitStack() as stack:
        for pool in sorted(pools):
            ensure_pool_limit(pool, pools[pool])
            try:
                stack.enter_context(concurrency(limit_name(pool), occupy=1, timeout_seconds=timeout,
                                                lease_duration=lease_seconds, holder=holder, strict=True))
            except TimeoutError:
                holders = current_holders(pool)
                raise LockTimeout(f"no free environment in pool {pool!r} after {timeout:.0f}s; "
                                  f"held by: {', '.join(holders) or 'unknown (events not yet recorded)'}",
                                  pool=pool, holders=holders, timeout=timeout) from None
            slots[pool] = _claim_member(stack, pool, pools[pool], lease_seconds, holder,
                                        deadline=time.monotonic() + timeout)
        yield slots


def _claim_member(stack: ExitStack, pool: str, size: int, lease_seconds: float,
                  holder: ConcurrencyLeaseHolder | None, deadline: float) -> int:
    """Take the first free member's one-slot limit. Holding the pool's limit means one is free, or is
    about to be (a member's lease may outlive its pool lease by a renewal interval), so retry briefly."""
    while True:
        for slot in range(size):
            name = slot_limit_name(pool, slot)
            ensure_limit(name, 1)
            try:
                stack.enter_context(concurrency(name, occupy=1, max_retries=0, lease_duration=lease_seconds,
                                                holder=holder, strict=True))
                return slot
            except ConcurrencySlotAcquisitionError as exc:  # wraps the server's HTTP answer
                cause = exc.__cause__
                if not (isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423):
                    raise
        if time.monotonic() > deadline:
            raise LockTimeout(f"pool {pool!r}: every member's limit is held although the pool had room",
                              pool=pool, holders=current_holders(pool), timeout=0.0)
        time.sleep(0.5)
