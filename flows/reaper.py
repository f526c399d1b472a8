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
from flows.maintenance import run_is_finished
from tasks.common import TASK_DEFAULTS
from testpilot.environments.reaper import ReapDecision, reap
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
                seen[run_id] = False
            else:
                seen[run_id] = ask(run_id)
        return seen[run_id]

    return finished


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


@flow(name="testpilot-reaper")
def reaper(dry_run: bool = False) -> list[dict[str, str]]:
    """Sweep every registered cloud account; one account failing does not stop the others."""
    logger = get_run_logger()
    targets = reap_targets()
    if not targets:
        logger.info("no ProxmoxCluster or HetznerProject blocks are registered: nothing to reap")
    rows: list[dict[str, str]] = []
    for target in targets:
        rows += reap_account(target, dry_run)
    done = sum(r["outcome"] in ("destroyed", "would destroy") for r in rows)
    trouble = sum(r["outcome"] not in ("destroyed", "would destroy") for r in rows)
    verb = "would remove" if dry_run else "removed"
    create_table_artifact(key=ARTIFACT_KEY, table=[{c: row[c] for c in COLUMNS} for row in rows],
                          description=f"Reaper{' (dry run)' if dry_run else ''}: {verb} {done} resource(s) in "
                                      f"{len(targets)} account(s); {trouble} problem(s).")
    return rows
