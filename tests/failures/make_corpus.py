"""Collect the labelled failure corpus by running deliberately broken code for real.

    uv run python tests/failures/make_corpus.py            # writes tests/failures/corpus/corpus.json

It writes the project in ``corpus_project.py`` to a temporary folder, runs pytest on it (JUnit XML out),
re-runs the failed tests once (a test that passes then is flaky), and adds failures from outside pytest:
provisioning, seeding and lock/exec timeouts raised as TestpilotErrors around real failing calls.
Each entry keeps the parsed TestResult (or FailureRecord), its re-run outcomes and its expected category.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import junitparser
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from corpus_project import EXPECTED, FILES, OVERRIDES  # noqa: E402

from testpilot.errors import ExecutionTimeout, InfrastructureError, LockTimeout, ProvisioningError  # noqa: E402
from testpilot.failures.records import record_from_error  # noqa: E402
from testpilot.results import TestResult  # noqa: E402

OUT = HERE / "corpus" / "corpus.json"
MAX_TRACE = 3000  # the tail holds the exception; the head is long library source listings


def _node_id(case: junitparser.TestCase) -> str:
    classname = case.classname or ""
    if not classname:  # collection errors: name is the module, dotted
        return case.name.replace(".", "/") + ".py"
    module = classname.replace(".", "/") + ".py"
    return f"{module}::{case.name}"


def parse_junit(path: Path, app: str) -> list[TestResult]:
    results = []
    for suite in junitparser.JUnitXml.fromfile(str(path)):
        for case in suite:
            outcome, message, text = "passed", "", ""
            for res in case.result:
                if isinstance(res, junitparser.Failure):
                    outcome = "failed"
                elif isinstance(res, junitparser.Error):
                    outcome = "error"
                elif isinstance(res, junitparser.Skipped):
                    outcome = "skipped"
                message, text = res.message or "", res.text or ""
            trace = text if len(text) <= MAX_TRACE else text[-MAX_TRACE:]
            results.append(TestResult(node_id=_node_id(case), app=app, outcome=outcome,
                                      duration=float(case.time or 0), message=message, traceback=trace,
                                      stdout=(case.system_out or "")[-1000:], stderr=(case.system_err or "")[-1000:],
                                      environment="local", host="127.0.0.1"))
    return results


def run_pytest(project: Path, junit: Path, args: list[str], state: Path) -> None:
    env = {**os.environ, "CORPUS_STATE": str(state), "PYTHONPATH": str(project)}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--continue-on-collection-errors",
           "-o", "junit_logging=all", "-q", f"--junitxml={junit}", *args]
    subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600,  # noqa: S603 (argv list)
                   check=False)


def expected_for(node_id: str) -> str:
    module = node_id.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return OVERRIDES.get(node_id) or EXPECTED[module]


def pytest_entries(root: Path) -> list[dict]:
    project, state = root / "project", root / "state"
    state.mkdir()
    for rel, text in FILES.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    run_pytest(project, root / "first.xml", ["tests"], state)
    first = [r for r in parse_junit(root / "first.xml", "shop") if r.failed]
    rerun_ids = [r.node_id for r in first if "::" in r.node_id]
    run_pytest(project, root / "rerun.xml", rerun_ids, state)
    rerun = {r.node_id: r.outcome for r in parse_junit(root / "rerun.xml", "shop")}
    entries = []
    for r in first:
        again = rerun.get(r.node_id, r.outcome) if "::" in r.node_id else r.outcome
        entries.append({"id": r.node_id, "expected": expected_for(r.node_id), "source": "pytest",
                        "result": r.model_dump(), "reruns": [again]})
    return entries


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def error_entries() -> list[dict]:
    """Failures outside pytest: each wraps a real failing call the way the pipeline's tasks do."""
    out: list[tuple[str, object]] = []
    for host in ("pve-1", "pve-2", "pve-3"):
        try:
            requests.post(f"http://127.0.0.1:{_closed_port()}/api2/json/nodes/{host}/qemu", timeout=2)
        except requests.RequestException as exc:
            try:
                raise ProvisioningError(f"could not create VM on {host}: {exc}", host=host, phase="provision",
                                        hint="check the Proxmox API and the node's status") from exc
            except ProvisioningError as err:
                out.append(("environment", record_from_error(err, environment="proxmox-pool")))
    try:
        socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)
    except OSError as exc:
        try:
            raise InfrastructureError(f"reset of 127.0.0.9 failed: {exc}", host="127.0.0.9", phase="release",
                                      hint="the reaper will destroy it; check sshd on the host") from exc
        except InfrastructureError as err:
            out.append(("environment", record_from_error(err, environment="ssh-pool")))
    for i, email in enumerate(("ada@example.com", "bob@example.com", "ops@example.com")):
        db = sqlite3.connect(":memory:")
        db.execute("create table users (id integer primary key, email text unique not null)")
        try:
            db.executemany("insert into users (email) values (?)", [(email,), (email,)])
        except sqlite3.IntegrityError as exc:
            out.append(("test_data", record_from_error(exc, test_id=f"seed:users#{i}", app="shop",
                                                       environment="local", phase="seed")))
    for seconds in ("3", "4"):
        try:
            subprocess.run(["sleep", seconds], timeout=0.1, check=True)  # noqa: S603 (fixed argv)
        except subprocess.TimeoutExpired as exc:
            try:
                raise ExecutionTimeout(f"shard 0 of shop ran past its timeout: {exc}", host="127.0.0.1",
                                       phase="test", hint="raise apps.shop.timeout or split the shard") from exc
            except ExecutionTimeout as err:
                out.append(("timeout", record_from_error(err, app="shop", environment="local")))
    lock = threading.Lock()
    lock.acquire()
    if not lock.acquire(timeout=0.05):
        try:
            raise LockTimeout("no slot in pool 'ssh-pool' after 0.05s", pool="ssh-pool", holders=["run-17"],
                              timeout=0.05)
        except LockTimeout as err:
            out.append(("timeout", record_from_error(err, environment="ssh-pool")))
    return [{"id": rec.test_id, "expected": cat, "source": "error", "record": rec.model_dump()}  # type: ignore[attr-defined]
            for cat, rec in out]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        entries = pytest_entries(Path(tmp)) + error_entries()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One entry per line: small, and a re-collection diffs line by line.
    OUT.write_text("[\n" + ",\n".join(json.dumps(e, sort_keys=True) for e in entries) + "\n]\n")
    by_cat: dict[str, int] = {}
    for e in entries:
        by_cat[e["expected"]] = by_cat.get(e["expected"], 0) + 1
    print(f"{len(entries)} failures -> {OUT}: {by_cat}")


if __name__ == "__main__":
    main()
