"""The ``testpilot`` command as users run it: a real process, real signals, a real Prefect server."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, commit_change, make_repo


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=kw.pop("cwd", REPO), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, **kw)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.parametrize("case", ["malformed", "missing-path", "bad-ref"])
def test_config_errors_print_one_line_and_exit_2(tmp_path, case):
    repo = make_repo(tmp_path)
    suite = repo / "testpilot.yaml"
    args = ["run", "--suite", str(suite)]
    if case == "malformed":
        suite.write_text("apps:\n  alpha: {path: apps/alpha\n")
        expected = f"{suite}:3: malformed YAML"
    elif case == "missing-path":
        suite.write_text(suite.read_text().replace("path: apps/beta", "path: apps/gone"))
        expected = f"{suite}:4 apps.beta.path: folder 'apps/gone' does not exist"
    else:
        args += ["--base", "no-such-branch"]
        expected = "unknown git ref 'no-such-branch'"
    code, out, err = finish(cli(*args, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}), timeout=60)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert expected in err


def _timeline(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.flows
def test_sigint_half_way_still_tears_down(prefect_api, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    envs = Path(os.environ["TESTPILOT_HOME"]) / "envs"
    before = set(envs.iterdir()) if envs.exists() else set()  # a killed run's folder waits for data gc
    proc = cli("run", "--suite", str(repo / "testpilot.yaml"), env={"MINISUITE_DELAY": "20"})
    deadline = time.monotonic() + 120
    while not (envs.exists() and set(envs.iterdir()) - before):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no environment was provisioned"
        time.sleep(0.2)
    time.sleep(2)  # the tests are now running inside the environment
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=120)
    assert code == 130, (out, err)
    assert set(envs.iterdir()) - before == set()


def _untracked(repo: Path) -> list[str]:
    """What ``git status`` shows in ``repo`` beyond tracked, unchanged files (ignored ones included);
    bytecode caches left out (a process importing a module of the repository writes them)."""
    out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--ignored", "--untracked-files=all"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.splitlines() if "__pycache__/" not in line)


@pytest.mark.flows
def test_two_runs_on_a_pool_of_one_never_overlap(prefect_api, tmp_path):
    """Also: with no --results, each run's reports land in $TESTPILOT_HOME/results/<run id>, and nothing is
    written into the current folder, the repository under test or this checkout."""
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    timeline = tmp_path / "timeline.jsonl"
    home, here = tmp_path / "home", tmp_path / "elsewhere"
    here.mkdir()
    ours_before = _untracked(REPO)
    env = {"MINISUITE_TIMELINE": str(timeline), "MINISUITE_DELAY": "1", "TESTPILOT_HOME": str(home)}
    assert "TESTPILOT_RESULTS_DIR" not in os.environ  # the default is what this test is about
    procs = [cli("run", "--suite", str(repo / "testpilot.yaml"), env=env, cwd=here) for _ in range(2)]
    outcomes = [finish(p) for p in procs]
    assert [c for c, _, _ in outcomes] == [0, 0], outcomes
    run_ids = [out.split("/runs/flow-run/")[1].split()[0] for _, out, _ in outcomes]
    assert sorted(p.name for p in (home / "results").iterdir()) == sorted(run_ids), outcomes
    for run_id, (_, out, _) in zip(run_ids, outcomes, strict=True):
        results = home / "results" / run_id
        assert f"reports in {results}\n" in out, out
        assert {p.name for p in results.iterdir()} >= {"junit.xml", "report.json"}
        assert json.loads((results / "report.json").read_text())["results"]
    assert list(here.iterdir()) == []
    assert _untracked(repo) == [] and _untracked(REPO) == ours_before
    spans: dict[str, tuple[float, float]] = {}
    for row in _timeline(timeline):
        start, end = spans.get(row["run"], (row["start"], row["end"]))
        spans[row["run"]] = (min(start, row["start"]), max(end, row["end"]))
    assert len(spans) == 2, spans
    (a_start, a_end), (b_start, b_end) = sorted(spans.values())
    assert a_end <= b_start, f"runs overlapped: {spans}"
    assert {row["env"] for row in _timeline(timeline)} == {"local-0"}


@pytest.mark.flows
@pytest.mark.slow
def test_demo_selects_catches_routes_and_leaves_run_in_prefect(prefect_api, tmp_path):
    code, out, err = finish(cli("demo", env={"TESTPILOT_RESULTS_DIR": str(tmp_path)}), timeout=600)
    assert code == 0, out + err
    assert "Demo finished as expected" in out
    selected = [line for line in out.splitlines() if line.startswith("  ") and ": " in line]
    assert selected and all(line.split(": ", 1)[1] for line in selected)
    total = int(out.split("Selected ")[1].split(" of ")[1].split()[0])
    assert len(selected) < total
    # Each selected entry is there because the record shows it ran the changed code, because its app
    # depends on the changed one and it connected to it at run time, or because the suite always runs it.
    reasons = [line.split(": ", 1)[1] for line in selected]
    ran = [r for r in reasons if r.startswith("ran apps/payment/src/payment/fees.py::calculate_fee")]
    assert ran and all(r in ran or "depends on payment-service" in r or r.startswith("always_run")
                       for r in reasons), out
    unrelated = ("tests/test_currency.py", "tests/test_auth.py", "tests/test_db.py")  # never reach calculate_fee
    assert not any(name in line for line in selected for name in unrelated), out
    assert "tests/test_fees.py::test_bank_transfer_fee_is_capped category=product_bug owner=payments-team" in out
    assert "Environment folders left behind: 0" in out
    run_id = out.split("/runs/flow-run/")[-1].split()[0]  # the change's run (the first one records)
    listed = subprocess.run([sys.executable, "-m", "prefect", "flow-run", "ls"], capture_output=True, text=True,
                            env={**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "300"})
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        assert listed.returncode == 0 and run.name in listed.stdout and run.state_name == "Failed"
        keys = {a.key for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))}
    assert {"testpilot-summary", "testpilot-results-example-shop"} <= keys



def _new_folder_with_data(envs: Path, before: set[Path]) -> Path | None:
    """A run's environment folder that appeared since ``before`` and holds its seeded SQLite namespace."""
    new = set(envs.iterdir()) - before if envs.exists() else set()
    return next((f for f in new if list(f.glob("db.*.db"))), None)


@pytest.mark.flows
def test_data_gc_declares_a_killed_run_crashed_and_drops_its_data(prefect_api, tmp_path):
    """`testpilot data gc` after a `kill -9`: the run stopped heart-beating, so gc marks it Crashed (as the
    reaper does) and then removes what it left: its environment folder and the data seeded into it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    envs = Path(os.environ["TESTPILOT_HOME"]) / "envs"
    before = set(envs.iterdir()) if envs.exists() else set()
    # No database server: the run's data is a SQLite namespace file in its folder, and this gc must not
    # drop the databases of runs on a shared server that this session's Prefect does not know.
    no_servers = {"TESTPILOT_POSTGRES_URL": "", "TESTPILOT_MYSQL_URL": "", "PREFECT_API_URL": prefect_api}
    proc = cli("run", "--suite", str(repo / "testpilot.yaml"), env={**no_servers, "MINISUITE_DELAY": "60"},
               start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (folder := _new_folder_with_data(envs, before)) is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no environment with seeded data appeared"
            time.sleep(0.2)
        seeded = list(folder.glob("db.*.db"))
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its tests are gone: no finally, hook or teardown
        proc.communicate()
        with get_client(sync_client=True) as client:
            [run] = [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(
                any_=["testpilot-pipeline"]))) if r.id.hex[:12] == folder.name.rsplit("-", 1)[1]]
        assert run.state_name == "Running" and folder.is_dir()  # what kill -9 leaves
        time.sleep(4)  # silent for longer than TESTPILOT_ZOMBIE_AFTER below (90 s in production)
        code, out, err = finish(cli("data", "gc", env={**no_servers, "TESTPILOT_ZOMBIE_AFTER": "3"}), timeout=120)
        assert code == 0, (out, err)
        assert "dead runs marked Crashed: " in out and "dead runs marked Crashed: 0;" not in out, out
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        assert state is not None and state.name == "Crashed" and "no heartbeat" in str(state.message)
        assert not folder.exists() and not any(f.exists() for f in seeded)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # The session's test server runs no lease repossessor: free the pool slot the killed run held.
        with get_client(sync_client=True) as client:
            for limit in client.read_global_concurrency_limits(limit=200):
                if limit.name.startswith("testpilot-pool-local"):
                    client.delete_global_concurrency_limit_by_name(limit.name)
