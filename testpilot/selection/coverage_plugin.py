"""pytest plugin: one coverage.py dynamic context per test (its node id), for the coverage map.

Use: ``coverage run -m pytest -p testpilot.selection.coverage_plugin``. Without coverage running it
does nothing.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


def _switch(name: str) -> None:
    import coverage

    current = coverage.Coverage.current()
    if current is not None:
        current.switch_context(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Generator[None, None, None]:
    _switch(item.nodeid)
    yield
    _switch("")
