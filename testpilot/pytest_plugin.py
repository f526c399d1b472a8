"""Testpilot's pytest plugin: the ``depends_on`` marker and scenario data flow fixtures.

Standalone on purpose (stdlib and pytest only): Testpilot copies this file into an app's virtualenv or
onto a remote host as ``testpilot_pytest.py`` and runs ``pytest -p testpilot_pytest``.

* ``@pytest.mark.depends_on("tests/test_setup.py::test_cluster", ...)`` declares test-level
  dependencies; Testpilot reads them statically to order and skip tests.
* ``testpilot_inputs``: a dict loaded from the JSON file named by ``TESTPILOT_INPUTS`` ({} when unset).
* ``testpilot_outputs``: a dict the test fills; at teardown the outputs of every test in the session so
  far are written as one JSON object to the file named by ``TESTPILOT_OUTPUTS`` (when set).
* With ``TESTPILOT_RECORD=<file>``: records, per test, the repository functions it ran and the files it
  opened (see ``testpilot/recorder.py``, staged beside this file as ``testpilot_recorder.py``) and writes
  them as gzipped JSON to that file at the end of the session. ``TESTPILOT_RECORD_ROOT`` is the repository
  root (default: pytest's rootdir).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

RESULT_MARKER = "testpilot-result: "
INPUTS_ENV = "TESTPILOT_INPUTS"
RECORD_ENV = "TESTPILOT_RECORD"
OUTPUTS_ENV = "TESTPILOT_OUTPUTS"

# Outputs of every test so far in this session, kept on the config so in-process runs stay apart.
_PUBLISHED = pytest.StashKey[dict[str, Any]]()


_RECORDER = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before conftests import the project, so its modules are compiled with hit markers.
    if not os.environ.get(RECORD_ENV):
        return
    try:
        import testpilot_recorder as recorder  # staged copy
    except ImportError:
        from testpilot import recorder
    root = os.environ.get("TESTPILOT_RECORD_ROOT") or str(early_config.rootpath)
    cache = os.environ.get("TESTPILOT_RECORD_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "testpilot", "record-cache")
    rec = recorder.Recorder(root, cache, tuple(early_config.getini("python_files")))
    rec.install()
    rec.started = time.time()
    early_config.stash[_RECORDER] = rec


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Any:
    # A wider-scoped fixture is set up inside the first test that needs it; every later test that uses
    # it depends on what it ran too, so its hits are kept per fixture definition.
    rec = request.config.stash.get(_RECORDER, None)
    if rec is None or rec.context is None:
        yield
        return
    outer = rec.take()
    yield
    mine = rec.take()
    if fixturedef.scope != "function":
        rec.fixtures[id(fixturedef)] = mine
    rec.hits.update(dict.fromkeys(outer | mine, 1))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    rec = item.config.stash.get(_RECORDER, None)
    if rec is None:
        yield
        return
    rec.start_test()
    yield
    used = rec.end_test()
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info is not None else ()):
        for fixturedef in defs:
            used["units"] |= rec.fixtures.get(id(fixturedef), set())
    rec.results[item.nodeid] = used


def pytest_sessionfinish(session: pytest.Session) -> None:
    rec = session.config.stash.get(_RECORDER, None)
    if rec is None:
        return
    rec.flush_session()
    instrumented, plain = rec.imported()
    keys: dict[str, int] = {}

    def ids(values: set[str]) -> list[int]:
        return sorted(keys.setdefault(v, len(keys)) for v in values)

    tests = {node: {k: ids(v) for k, v in used.items() if v} for node, used in rec.results.items()}
    session_data = {k: ids(v) for k, v in rec.session.items() if v}
    data = {"version": 1, "root": rec.root, "rootdir": str(session.config.rootpath), "python": sys.version,
            "started": rec.started, "duration": time.time() - rec.started, "keys": list(keys),
            "units": {p: rec.units[p] for p in instrumented}, "uninstrumented": plain,
            "session": session_data, "tests": tests}
    out = os.environ[RECORD_ENV]
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".testpilot-record-", dir=folder)
    with os.fdopen(fd, "wb") as fh:
        fh.write(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 5))
    os.replace(tmp, out)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "depends_on(*node_ids): this test needs the named tests (pytest node ids) to pass first")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One line per finished test on the real stdout, so a run whose link drops (and whose JUnit file never
    comes back) still knows which tests had passed. Written to fd 1, past any sys-level capture."""
    if report.when == "call" or (report.when == "setup" and not report.passed) or \
            (report.when == "teardown" and report.failed):
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        line = json.dumps({"node_id": report.nodeid, "outcome": outcome, "duration": round(report.duration, 3)})
        try:
            os.write(1, f"{RESULT_MARKER}{line}\n".encode())
        except OSError:
            pass


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
