"""Small helpers the task modules share."""

from __future__ import annotations

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

