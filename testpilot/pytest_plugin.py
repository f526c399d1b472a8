"""Testpilot's pytest plugin: the ``depends_on`` marker and scenario data flow fixtures.

Standalone on purpose (stdlib and pytest only): Testpilot copies this file into an app's virtualenv or
onto a remote host as ``testpilot_pytest.py`` and runs ``pytest -p testpilot_pytest``.

* ``@pytest.mark.depends_on("tests/test_setup.py::test_cluster", ...)`` declares test-level
  dependencies; Testpilot reads them statically to order and skip tests.
* ``testpilot_inputs``: a dict loaded from the JSON file named by ``TESTPILOT_INPUTS`` ({} when unset).
* ``testpilot_outputs``: a dict the test fills; at teardown the outputs of every test in the session so
  far are written as one JSON object to the file named by ``TESTPILOT_OUTPUTS`` (when set).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

INPUTS_ENV = "TESTPILOT_INPUTS"
OUTPUTS_ENV = "TESTPILOT_OUTPUTS"

# Outputs of every test so far in this session, kept on the config so in-process runs stay apart.
_PUBLISHED = pytest.StashKey[dict[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "depends_on(*node_ids): this test needs the named tests (pytest node ids) to pass first")


@pytest.fixture
def testpilot_inputs() -> dict[str, Any]:
    """The scenario inputs of this step, read from the JSON file at $TESTPILOT_INPUTS."""
    path = os.environ.get(INPUTS_ENV, "")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"testpilot: cannot read inputs file {path} (${INPUTS_ENV}): {exc}") from None
    if not isinstance(data, dict):
        raise pytest.UsageError(f"testpilot: inputs file {path} must hold a JSON object")
    return data


def _write_atomically(path: str, data: dict[str, Any]) -> None:
    # A reader never sees a half-written file, even if the test process is killed mid-write.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".testpilot-outputs-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@pytest.fixture
def testpilot_outputs(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict this step fills with its outputs; written to $TESTPILOT_OUTPUTS at teardown."""
    outputs: dict[str, Any] = {}
    yield outputs
    path = os.environ.get(OUTPUTS_ENV, "")
    if not path:
        return
    for key, value in outputs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(f"testpilot output {key!r} of {request.node.nodeid} has type {type(value).__name__}, "
                            "which JSON cannot hold; publish str, int, float, bool, list or dict") from None
    published = request.config.stash.setdefault(_PUBLISHED, {})
    published.update(outputs)
    _write_atomically(path, dict(published))
