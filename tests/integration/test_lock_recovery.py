"""A run holding a pool's only slot is killed with SIGKILL; the next run gets the slot through lease
expiry alone, with nobody cleaning up by hand."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import commit_change, make_repo
from tests.integration.test_cli import _timeline, cli, finish

pytestmark = [pytest.mark.flows, pytest.mark.slow]
LEASE = 60  # Prefect's minimum lease


@pytest.fixture
def full_server(tmp_path):
    """A real `prefect server start`: unlike the test harness it runs the lease repossessor service."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2"}
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)  # noqa: S310 - loopback
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(30)
    log.close()


def test_killed_holder_loses_its_slot_when_the_lease_expires(full_server, tmp_path):
    repo = make_repo(tmp_path)
    commit_change(repo, "apps/alpha/src/alpha/prices.py", "price * qty", "qty * price")
    suite = repo / "testpilot.yaml"
    suite.write_text(suite.read_text().replace("acquire_timeout: 120", "acquire_timeout: 240"))
    timeline = tmp_path / "timeline.jsonl"
    envs = Path(os.environ["TESTPILOT_HOME"]) / "envs"
    before = set(envs.iterdir()) if envs.exists() else set()
    api = {"PREFECT_API_URL": full_server}
    holder = cli("run", "--suite", str(suite), env={**api, "MINISUITE_DELAY": "600",
                                                    "MINISUITE_TIMELINE": str(timeline)})
    deadline = time.monotonic() + 120
    while not (envs.exists() and set(envs.iterdir()) - before):
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline, "the first run never provisioned"
        time.sleep(0.2)
    time.sleep(2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.time()
    orphaned = sorted(set(envs.iterdir()) - before)
    for folder in orphaned:  # the killed run's test process lives on; it must not block the slot
        subprocess.run(["pkill", "-9", "-f", str(folder)], check=False)
    second = cli("run", "--suite", str(suite), env={**api, "MINISUITE_TIMELINE": str(timeline)})
    code, out, err = finish(second, timeout=400)
    assert code == 0, out + err
    starts = [row["start"] for row in _timeline(timeline)]
    assert starts, "the second run ran no tests"
    waited = min(starts) - killed_at
    assert waited < LEASE + 60, f"slot came back after {waited:.0f}s; the lease is {LEASE}s"
    print(f"slot recovered {waited:.0f}s after SIGKILL (lease {LEASE}s)")
