"""Pool locks on Prefect global concurrency limits: one limit per environment pool.

The limit has as many slots as the pool has environments. Slots are leases: the holder's process
renews them, so a holder that dies (even ``kill -9``) loses its slot when the lease expires and no
lock ever needs manual clean-up.
A ``local`` pool's environments are folders on the worker's own machine, so its limits are per host
(``testpilot-pool-<pool>-on-<host>``): slot n is slot n of that machine, and workers on two hosts
never wait for each other's local environments. Remote pools (ssh, proxmox, hetzner) are shared by
every worker and keep one limit. Who holds a slot is read back from Prefect's own event store
(``prefect.concurrency-limit.acquired`` events carry the holding flow run), not from a store of ours.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import (
    ConcurrencyLimitWithLeaseResponse,
    MinimalConcurrencyLimitResponse,
)
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency._events import emit_concurrency_acquisition_events, emit_concurrency_release_events
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types._datetime import now

from tasks.common import TASK_DEFAULTS
from testpilot.errors import LockTimeout
from testpilot.run_report import locks_markdown
from testpilot.settings import get_settings

# Beyond the lease itself: the server's repossessor runs every 15 s by default.
ORPHAN_MARGIN = 30.0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower())


def limit_name(pool: str, host: str = "") -> str:
    """The pool's limit; ``host`` scopes it to one machine (for pools of local environments)."""
    return f"testpilot-pool-{_slug(pool)}" + (f"-on-{_slug(host)}" if host else "")


def lock_host() -> str:
    """This worker's machine, as local pools' limits name it (``TESTPILOT_WORKER_HOST`` overrides)."""
    return get_settings().worker_host or socket.gethostname()


def ensure_limit(name: str, slots: int, client: SyncPrefectClient | None = None) -> None:
    """Create the limit with ``slots`` when it is missing. An existing one keeps its size: a pool is
    shared by every suite naming it, so its size is set once (deployments.setup or the first run) and a
    suite that disagrees gets a warning, never a resize under the other runs' feet. ``client``: an open
    API client to use (default: a new one)."""
    with nullcontext(client) if client is not None else get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:
                pass  # another run created it a moment ago
            return
        if not current.active:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=True))
        if current.limit != slots:
            logging.getLogger("testpilot.locks").warning(
                "concurrency limit %s has %d slot(s) but this suite says pool_size %d; keeping %d (change it "
                "with `prefect gcl update %s --limit N` if the pool really changed)",
                name, current.limit, slots, current.limit, name)


def current_holders(name: str, window: timedelta = timedelta(hours=12), max_pages: int = 20) -> list[str]:
    """Flow runs that acquired a slot of the limit ``name``, have not released it, and are still running."""
    return [f"{h['name']} ({h['run_id']}, {h['state']})" for h in lock_holders(name, window, max_pages)]


def lock_holders(name: str, window: timedelta = timedelta(hours=12), max_pages: int = 20) -> list[dict[str, str]]:
    """Like ``current_holders``, as dicts with run_id, name and state."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

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
                    holders.append({"run_id": run_id, "name": run.name, "state": run.state.name or ""})
        return holders


def pool_waiters(pool: str, holders: list[str]) -> list[dict[str, str]]:
    """Running flow runs tagged with the pool (see ``run_tags``) that hold none of its slots."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"pool:{pool}"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))), limit=50)
    return [{"run_id": str(r.id), "name": r.name, "state": (r.state.name if r.state else "") or ""}
            for r in runs if str(r.id) not in holders]


@task(name="lock-holders", **TASK_DEFAULTS)
def publish_locks(pools: dict[str, int], ui_url: str = "", me: dict[str, str] | None = None,
                  local: Collection[str] = ()) -> str:
    """A markdown artifact: per pool, who holds its slots and who waits, with links to their runs.
    ``me`` (this run, which holds a slot of every pool) is listed even before its own acquisition
    event reaches the event store."""
    table = {}
    for pool, size in pools.items():
        holders = lock_holders(limit_name(pool, lock_host() if pool in local else ""))
        if me and me["run_id"] not in {h["run_id"] for h in holders}:
            holders.insert(0, me)
        table[pool] = {"slots": size, "holders": holders,
                       "waiters": pool_waiters(pool, [h["run_id"] for h in holders])}
    text = locks_markdown(table, ui_url)
    create_markdown_artifact(text, key="testpilot-locks", description="Pool locks: holders and waiters")
    return text


@contextmanager
def pool_locks(pools: dict[str, int], *, timeout: float, lease_seconds: float,
               local: Collection[str] = ()) -> Iterator[dict[str, int]]:
    """Hold one slot of every named pool (in sorted order, so two runs can never deadlock).
    Pools named in ``local`` are locked on this host only.

    Yields which member (slot number) of each pool this run holds. The pool's limit says *that* a run
    may use an environment; a one-slot limit per member says *which* one, so two runs never get the
    same VM. Both are leases: a killed holder's member comes back when its lease expires.
    """
    with member_locks(pools, timeout=timeout, lease_seconds=lease_seconds, local=local) as held:
        yield {pool: members[0] for pool, members in held.items()}


@contextmanager
def member_locks(pools: dict[str, int], *, timeout: float, lease_seconds: float, local: Collection[str] = (),
                 members: Mapping[str, int] | None = None) -> Iterator[dict[str, list[int]]]:
    """Like ``pool_locks``, and then up to ``members[pool] - 1`` more members of each pool, without waiting.

    The first member of every pool is waited for as ``pool_locks`` does. Extra members are tried only
    once every pool has its first (a run never sits on extras while it waits): a pool slot and a
    member's one-slot limit, each taken only if free right now; a pool slot without a free member is
    given back at once. Yields pool -> the members held, the first one first.
    """
    context = FlowRunContext.get()
    holder = ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id) if context and context.flow_run else None
    held: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    with Leases(lease_seconds, holder) as leases:
        for pool in sorted(pools):
            host = lock_host() if pool in local else ""
            names[pool] = name = limit_name(pool, host)
            ensure_limit(name, pools[pool], leases.client)
            _take_pool_slot(leases, name, pool, host, timeout)
            held[pool] = [_claim_member(leases, name, pool, pools[pool], deadline=time.monotonic() + timeout)]
        for pool in sorted(pools):
            for _ in range(min((members or {}).get(pool, 1), pools[pool]) - 1):
                slot = _take_extra_member(leases, names[pool], pools[pool], held[pool])
                if slot is None:
                    break
                held[pool].append(slot)
        yield held


class Leases:
    """The slots a run holds: each a lease of one concurrency limit, taken and handed back through one
    API client, kept alive by Prefect's own renewal (which stops the run if a renewal fails), with the
    same ``prefect.concurrency-limit.acquired/released`` events ``lock_holders`` reads.

    Prefect's ``concurrency()`` context manager opens a new API client for each acquisition and each
    release; a run on four members holds eight leases, and handing them back took 0.92 s that way
    against 0.37 s here (bench/locks.py). The server calls are the same."""

    def __init__(self, lease_seconds: float, holder: ConcurrencyLeaseHolder | None) -> None:
        self.lease_seconds, self.holder = lease_seconds, holder
        self._client_stack = ExitStack()
        self.client = self._client_stack.enter_context(get_client(sync_client=True))
        self._held: list[tuple[UUID, list[MinimalConcurrencyLimitResponse], dict[UUID, Any], ExitStack]] = []

    def take(self, name: str, wait: float | None = None) -> bool:
        """One slot of the limit ``name``, waiting up to ``wait`` seconds for it (None: only if free now)."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                response = self.client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=self.lease_seconds,
                    holder=self.holder)
                break
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:
                    raise
                left = 0.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(left, float(exc.response.headers.get("Retry-After", 1.0))))
        granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
        if not granted.limits:
            raise ConcurrencySlotAcquisitionError(f"concurrency limit {name!r} does not exist")
        renewal = ExitStack()
        self._held.append((granted.lease_id, granted.limits, {}, renewal))
        renewal.enter_context(maintain_concurrency_lease(granted.lease_id, self.lease_seconds,
                                                         raise_on_lease_renewal_failure=True))
        self._held[-1][2].update(emit_concurrency_acquisition_events(granted.limits, 1))
        return True

    def give_back_last(self) -> None:
        """Hand back the slot taken last (an extra member's pool slot when no member was free)."""
        self._give_back(*self._held.pop())

    def _give_back(self, lease: UUID, limits: list[MinimalConcurrencyLimitResponse], events: dict[UUID, Any],
                   renewal: ExitStack) -> None:
        renewal.close()  # first: a renewal of a lease already handed back would fail and stop the run
        try:
            self.client.release_concurrency_slots_with_lease(lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            logging.getLogger("testpilot.locks").warning(
                "could not hand back concurrency lease %s (%s); it expires within %.0fs", lease, exc,
                self.lease_seconds)
            return
        if events:
            emit_concurrency_release_events(limits, 1, events)

    def __enter__(self) -> Leases:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            while self._held:
                self._give_back(*self._held.pop())
        finally:
            self._client_stack.close()


def _take_extra_member(leases: Leases, pool_limit: str, size: int, mine: Collection[int]) -> int | None:
    """One more member if one is free now: a slot of the pool's limit, then a member's (not one of
    ``mine``, which this run holds already); else None, with the pool slot given back."""
    if not leases.take(pool_limit):
        return None
    slot = _free_member(leases, pool_limit, size, skip=mine)
    if slot is None:
        leases.give_back_last()
    return slot


def _take_pool_slot(leases: Leases, name: str, pool: str, host: str, timeout: float) -> None:
    """One slot of the pool's limit, waiting up to ``timeout``. When the wait runs out and no running
    flow run holds a slot, the slot is orphaned: a holder that died before its acquisition was
    recorded, or a lease the server granted while the answer was lost to a client-side timeout and
    retry. Its lease expires within ``lease_seconds`` and the server's repossessor frees it, so wait
    once more for that long before giving up."""
    waits = [timeout, leases.lease_seconds + ORPHAN_MARGIN]
    for attempt, wait in enumerate(waits):
        if leases.take(name, wait=wait):
            return
        holders = current_holders(name)
        if holders or attempt == len(waits) - 1:
            break
        logging.getLogger("testpilot.locks").warning(
            "pool %r: no free slot after %.0fs and no running flow run holds one; an orphaned lease "
            "expires within %.0fs, waiting once more", pool, timeout, leases.lease_seconds)
    where = f" on host {host}" if host else ""
    waited = sum(waits[:attempt + 1])
    who = ", ".join(holders) or (f"no running flow run (an orphaned slot: see `prefect gcl inspect {name}`, "
                                 f"and when no run uses the pool, free it with `prefect gcl update {name} --active-slots 0`)")
    raise LockTimeout(f"no free environment in pool {pool!r}{where} after {waited:.0f}s; held by: {who}",
                      pool=pool, holders=holders, timeout=waited) from None


def _claim_member(leases: Leases, pool_limit: str, pool: str, size: int, deadline: float) -> int:
    """Take the first free member's one-slot limit. Holding the pool's limit means one is free, or is
    about to be (a member's lease may outlive its pool lease by a renewal interval), so retry briefly."""
    while True:
        slot = _free_member(leases, pool_limit, size)
        if slot is not None:
            return slot
        if time.monotonic() > deadline:
            raise LockTimeout(f"pool {pool!r}: every member's limit is held although the pool had room",
                              pool=pool, holders=current_holders(pool_limit), timeout=0.0)
        time.sleep(0.5)


def _free_member(leases: Leases, pool_limit: str, size: int, skip: Collection[int] = ()) -> int | None:
    """The first member (not in ``skip``) whose one-slot limit is free now (now held), or None."""
    for slot in (s for s in range(size) if s not in skip):
        name = f"{pool_limit}-slot-{slot}"
        ensure_limit(name, 1, leases.client)
        if leases.take(name):
            return slot
    return None
