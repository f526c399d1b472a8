"""What a dead run leaves on the worker, found from names alone, and removed once its run is over.

A run killed with ``kill -9`` runs no ``finally``, no crash hook: its local environment folders
(``envs/<env>-<run12>``), the SQLite files it seeded for remote hosts (``remote-sqlite/<env>-<run>``) and
the scenario services it started (recorded in ``services/<run>-<pid>.json``) stay. The sweep is given
the ids of the runs that are still alive (Prefect knows; a zombie has been marked Crashed first) and
removes everything else. Nothing here imports Prefect: the caller asks it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from testpilot.scenarios.services import sweep_services

_RUN_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_SHORT = re.compile(r"-([0-9a-f]{12})$")


def sweep_leftovers(home: Path, live_runs: Iterable[str]) -> list[str]:
    """Remove folders and stop services of every run not in ``live_runs``; returns what went."""
    live = {r.lower() for r in live_runs}
    shorts = {r.replace("-", "")[:12] for r in live}
    removed: list[str] = []
    envs = home / "envs"
    for folder in sorted(envs.iterdir()) if envs.is_dir() else []:
        match = _SHORT.search(folder.name)
        if folder.is_dir() and match and match.group(1) not in shorts:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    scratch = home / "remote-sqlite"
    for folder in sorted(scratch.iterdir()) if scratch.is_dir() else []:
        match = _RUN_ID.search(folder.name)
        if folder.is_dir() and match and match.group(1) not in live:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    removed += [f"service pid {pid}" for pid in sweep_services(home / "services", live)]
    return removed
