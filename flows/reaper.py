"""The reaper: remove VMs and servers Testpilot made that expired or whose flow run is over.

It sweeps every ``ProxmoxCluster`` and ``HetznerProject`` block (and the blocks cloud
``EnvironmentPool`` blocks name), one task per account, and publishes a table artifact
``testpilot-reaper`` of what it removed and why. An account whose API cannot be reached is a
warning and a row of the table; the other accounts are still swept. Deployed every 15 minutes
(``prefect.yaml``); ``dry_run`` lists what would go without removing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from blocks.environments import ReapTarget, reap_targets, reaping_provider
from flows.maintenance import prune_pool_limits, run_is_finished, sweep_dead_runs
from tasks.common import TASK_DEFAULTS
from testpilot.environments.reaper import UNTAGGED, ReapDecision, reap
from testpilot.errors import InfrastructureError, TestpilotError

ARTIFACT_KEY = "testpilot-reaper"
COLUMNS = ("account", "resource", "pool", "run", "reason", "outcome")


def run_checker(ask: Callable[[str], bool] = run_is_finished) -> Callable[[str], bool]:
    """``ask`` once per run id; an id that is no flow run id is never called over (only expiry removes it)."""
    seen: dict[str, bool] = {}

    def finished(run_id: str) -> bool:
        if run_id not in seen:
            try:
                UUID(run_id)
            except ValueError:
                seen[run_id] = run_id.startswith(UNTAGGED) and member_is_free(run_id)
            else:
                seen[run_id] = ask(run_id)
        return seen[run_id]

    return finished


def member_is_free(untagged: str) -> bool:
    """For an untagged VM ("untagged:<pool>:<slot>"): nobody holds that pool member's lock, so no live run
    can be between its clone and its tags; a killed one left it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    pool, _, slot = untagged[len(UNTAGGED):].rpartition(":")
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(f"testpilot-pool-{pool}-slot-{slot}")
        except ObjectNotFound:
            return True
    return limit.active_slots == 0


@task(name="reap-account", **TASK_DEFAULTS)
def reap_account(target: ReapTarget, dry_run: bool = False) -> list[dict[str, str]]:
    """Reap one account; returns a table row per resource handled, or one row saying why it could not."""
    logger = get_run_logger()
    account = f"{target.provider} {target.block}"
    rows: list[dict[str, str]] = []

    def record(decision: ReapDecision, outcome: str) -> None:
        r = decision.resource
        rows.append({"account": account, "resource": f"{r.name} ({r.id})", "pool": r.pool, "run": r.run_id,
                     "reason": decision.reason, "outcome": outcome})
        level = logger.warning if outcome.startswith("failed") else logger.info
        level("%s: %s %s (%s) in pool %s: %s", account, outcome, r.name, r.id, r.pool, decision.reason)

    try:
        provider = reaping_provider(target)
        reap(provider, is_run_finished=run_checker(), dry_run=dry_run, on_outcome=record)
    except Exception as exc:  # noqa: BLE001 - one account's trouble must not stop the sweep of the others
        if rows and isinstance(exc, TestpilotError):  # listed; the failed deletions are in the rows already
            return rows
        detail = str(exc) if isinstance(exc, TestpilotError) else f"{type(exc).__name__}: {exc}"
        what = ("unreachable" if isinstance(exc, InfrastructureError)
                else "not usable" if isinstance(exc, TestpilotError) else "error")
        logger.warning("%s is %s, skipped: %s", account, what, detail)
        rows.append({"account": account, "resource": "-", "pool": ", ".join(target.pools) or "-", "run": "-",
                     "reason": detail, "outcome": what})
        return rows
    if not rows:
        logger.info("%s: nothing to reap", account)
    return rows


@task(name="sweep-dead-runs", **TASK_DEFAULTS)
def sweep_runs(dry_run: bool = False) -> list[dict[str, str]]:
    """Declare runs that stopped heartbeating Crashed; remove their folders, services and databases."""
    if dry_run:
        return []
    from blocks.database import server_urls
    from testpilot.environments.databases import gc_databases

    swept = sweep_dead_runs()
    dropped = [db for url in server_urls() for db in gc_databases(url, run_is_finished)]
    rows = [{"account": "worker", "resource": run, "pool": "-", "run": run, "reason": "no heartbeat",
             "outcome": "marked Crashed"} for run in swept["crashed"]]
    rows += [{"account": "worker", "resource": what, "pool": "-", "run": "-", "reason": "its run is over",
              "outcome": "destroyed"} for what in swept["removed"] + dropped]
    rows += [{"account": "prefect", "resource": name, "pool": "-", "run": "-",
              "reason": "no holder, untouched for 7 days", "outcome": "destroyed"} for name in prune_pool_limits()]
    get_run_logger().info("dead runs: %d marked Crashed, %d leftover(s) removed", len(swept["crashed"]),
                          len(rows) - len(swept["crashed"]))
    return rows


@flow(name="testpilot-reaper")
def reaper(dry_run: bool = False) -> list[dict[str, str]]:
    """Sweep dead runs, then every registered cloud account; one account failing does not stop the others."""
    logger = get_run_logger()
    rows: list[dict[str, str]] = sweep_runs(dry_run)
    targets = reap_targets()
    if not targets:
        logger.info("no ProxmoxCluster or HetznerProject blocks are registered: nothing to reap")
    for target in targets:
        rows += reap_account(target, dry_run)
    done = sum(r["outcome"] in ("destroyed", "would destroy", "marked Crashed") for r in rows)
    trouble = sum(r["outcome"] not in ("destroyed", "would destroy", "marked Crashed") for r in rows)
    verb = "would remove" if dry_run else "removed"
    create_table_artifact(key=ARTIFACT_KEY, table=[{c: row[c] for c in COLUMNS} for row in rows],
                          description=f"Reaper{' (dry run)' if dry_run else ''}: {verb} {done} resource(s) in "
                                      f"{len(targets)} account(s); {trouble} problem(s).")
    return rows
