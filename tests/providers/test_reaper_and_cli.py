"""The reaper's pure decision, and the simulators started as standalone processes."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from testpilot.environments.reaper import OwnedResource, select_for_reaping


def owned(name: str, run: str, expires: int | None) -> OwnedResource:
    return OwnedResource("sim", name, name, "pool", run, expires)


def test_select_for_reaping() -> None:
    resources = [owned("expired", "live", 100), owned("orphan", "done", 900), owned("busy", "live", 900),
                 owned("idle", "idle", 900), owned("idle-expired", "idle", 50), owned("unbounded", "", None)]
    decisions = select_for_reaping(resources, now=500, is_run_finished=lambda run: run == "done")
    assert {d.resource.name: d.reason for d in decisions} == {
        "expired": "expired at 100", "orphan": "owning run done is over",
        "idle-expired": "expired at 50", "unbounded": "no expiry and no owning run"}


def _start(module: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", "0"], stdout=subprocess.PIPE, text=True)  # noqa: S603
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("}"):
            break
    return proc, json.loads("".join(lines))


def test_standalone_simulators() -> None:
    proc, info = _start("tests.sim.hetzner")
    try:
        answer = requests.get(f"{info['api_endpoint']}/images", headers={"Authorization": "Bearer sim-token"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["images"][0]["name"] == "debian-12"
    finally:
        proc.terminate()
        proc.wait(10)
    proc, info = _start("tests.sim.proxmox")
    try:
        answer = requests.get(f"{info['url']}/api2/json/nodes", verify=str(info["ca_bundle"]), timeout=5,
                              headers={"Authorization": "PVEAPIToken=root@pam!testpilot=00000000-sim0-token"})
        assert answer.status_code == 200 and answer.json()["data"][0]["node"] == "pve1"
    finally:
        proc.terminate()
        proc.wait(10)
