"""Small helpers the task modules share."""

from __future__ import annotations

import logging
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import NO_CACHE

from testpilot.suite import Suite, load_suite

TASK_DEFAULTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Suite:
    return load_suite(path)


def suite_at(path: str) -> Suite:
    """Load a suite file, cached until the file changes."""
    p = Path(path).resolve()
    return _load(str(p), p.stat().st_mtime if p.exists() else 0.0)



class _NoEmptyTraceback(logging.Filter):
    """Prefect's task engine logs a task that *returned* a Failed state with ``exc_info=True`` although
    no exception is active, which prints a bare ``NoneType: None`` line. Drop that empty exc_info."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is True:
            record.exc_info = sys.exc_info()
        if isinstance(record.exc_info, tuple) and record.exc_info[0] is None:
            record.exc_info = None
        return True


NO_EMPTY_TRACEBACK = _NoEmptyTraceback()


def quiet_empty_tracebacks() -> None:
    """Install the filter on Prefect's task run logger (idempotent)."""
    logging.getLogger("prefect.task_runs").addFilter(NO_EMPTY_TRACEBACK)
