"""A run killed with ``kill -9`` runs no hook: its services and folders stay until the sweep removes them.

Before: scenario services were re-parented to PID 1 and held their ports for good, and the run's
folders stayed. Now each service leaves a pid file, and the sweep (reaper, ``data gc``) stops the
services and removes the folders of every run Prefect no longer lists as alive.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from testpilot.environments.leftovers import sweep_leftovers
from testpilot.scenarios.services import free_port

RUNNER = """
import sys, time
from pathlib import Path
from testpilot.scenarios.services import start_service
record_dir, run_id, port, log = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
pid = start_service("users", f"{sys.executable} -m http.server {port} --bind 127.0.0.1", cwd=".", env={},
                    port=port, log_path=log, record_dir=record_dir, run_id=run_id)
print(pid, flush=True)
time.sleep(600)
"""


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_services_and_folders_of_a_killed_run_are_swept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead, live = str(uuid.uuid4()), str(uuid.uuid4())
    port = free_port()
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(home / "services"), dead, str(port),
                               str(tmp_path / "svc.log")], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert runner.stdout is not None
    pid = int(runner.stdout.readline())
    deadline = time.monotonic() + 20
    while not listening(port):
        assert time.monotonic() < deadline, (tmp_path / "svc.log").read_text()
        time.sleep(0.1)
    runner.send_signal(signal.SIGKILL)  # no finally, no hook
    runner.wait()
    assert alive(pid) and listening(port)  # what the issue saw: the service outlives its run
    [record] = (home / "services").glob("*.json")
    assert json.loads(record.read_text())["run_id"] == dead
    for run in (dead, live):
        (home / "envs" / f"local-0-{run.replace('-', '')[:12]}").mkdir(parents=True)
        (home / "remote-sqlite" / f"proxmox-1-{run}").mkdir(parents=True)
    removed = sweep_leftovers(home, {live})
    assert f"service pid {pid}" in removed and len(removed) == 3
    deadline = time.monotonic() + 10
    while alive(pid) or listening(port):  # SIGKILL is asynchronous
        assert time.monotonic() < deadline, f"service {pid} still alive={alive(pid)}, port {port} still open"
        time.sleep(0.05)
    assert list((home / "services").glob("*.json")) == []
    assert [p.name for p in (home / "envs").iterdir()] == [f"local-0-{live.replace('-', '')[:12]}"]
    assert [p.name for p in (home / "remote-sqlite").iterdir()] == [f"proxmox-1-{live}"]
