"""The reaper flow against the Proxmox and Hetzner simulators, with flow runs that really exist in Prefect.

Expiry is wall-clock time (``int(time.time() + expires_in)``), so an expired resource is one acquired
with a negative ``expires_in``; "the run is over" is a real flow run set to Completed.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.states import Completed, Running
from pydantic import SecretStr

from blocks.environments import EnvironmentPool, HetznerProject, ProxmoxCluster, ReapTarget, reap_targets
from flows.reaper import ARTIFACT_KEY, reaper, run_checker
from testpilot.environments.cloud import Backoff
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings
from tests.providers.conftest import Saved, request
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim


@flow(name="reaper-test-owner")
def owner() -> None:
    """Only here so flow runs can be created with a real flow behind them."""


def flow_run(state: Any) -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(owner, name=f"owner-{uuid.uuid4().hex[:6]}")
        client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def pve() -> Iterator[ProxmoxSim]:
    with ProxmoxSim() as sim:  # in-memory machines: the reaper never logs into a VM
        yield sim


@pytest.fixture
def hetzner_sim() -> Iterator[HetznerSim]:
    with HetznerSim() as sim:
        yield sim


def tag_vms(sim: ProxmoxSim, runs: dict[str, tuple[str, float]]) -> None:
    """One VM per entry (pool 'it', slot = position): run id and seconds until it expires."""
    provider = ProxmoxProvider(ProxmoxSettings(host=sim.host, token_name="testpilot",
                                               token_value=SecretStr("00000000-sim0-token"),
                                               ca_bundle=str(sim.tls.ca_bundle), template_vmid=9000),
                               backoff=Backoff(0.0, 1.0, 0.0))
    for slot, (run_id, expires_in) in enumerate(runs.values()):
        provider.acquire(request(slot=slot, run_id=run_id, expires_in=expires_in))


def label_servers(sim: HetznerSim, runs: dict[str, tuple[str, float]]) -> None:
    client = Client("sim-token", api_endpoint=sim.url, poll_interval=0)
    for slot, (name, (run_id, expires_in)) in enumerate(runs.items()):
        client.servers.create(name=name, server_type=ServerType(name="cx22"), image=Image(name="debian-12"),
                              labels={"tp-pool": "it", "tp-slot": str(slot), "tp-run": run_id,
                                      "tp-expires": str(int(time.time() + expires_in))})


def names_of_vms(sim: ProxmoxSim) -> set[str]:
    return {vm.config["name"] for vm in sim.vms()}


def names_of_servers(sim: HetznerSim) -> set[str]:
    return {server["name"] for server in sim.live_servers()}


def test_reaper_flow_removes_finished_and_expired_keeps_running(
        saved: Saved, pve: ProxmoxSim, hetzner_sim: HetznerSim, caplog: pytest.LogCaptureFixture) -> None:
    done, live = flow_run(Completed()), flow_run(Running())
    tag_vms(pve, {"done": (done, 3600), "live": (live, 3600), "expired": (live, -60)})
    assert names_of_vms(pve) == {"tp-it-0", "tp-it-1", "tp-it-2"}
    label_servers(hetzner_sim, {"hz-done": (done, 3600), "hz-live": (live, 3600), "hz-expired": (live, -60)})

    cluster = saved(ProxmoxCluster(host=pve.host, token_name="testpilot", token_value=SecretStr("00000000-sim0-token"),
                                   ca_bundle=str(pve.tls.ca_bundle)), "pve")
    project = saved(HetznerProject(token=SecretStr("sim-token"), api_endpoint=hetzner_sim.url), "hz")
    down = saved(ProxmoxCluster(host=f"127.0.0.1:{closed_port()}", token_name="testpilot",
                                token_value=SecretStr("00000000-sim0-token")), "down")
    pool = saved(EnvironmentPool(provider="proxmox", size=2, target=cluster, spec={"template_vmid": 9000}), "pool")
    orphan_pool = saved(EnvironmentPool(provider="hetzner", target="no-such-project"), "orphan")
    mine = {f"proxmox {cluster}", f"hetzner {project}", f"proxmox {down}", "hetzner no-such-project"}

    dry = reaper(dry_run=True)
    assert names_of_vms(pve) == {"tp-it-0", "tp-it-1", "tp-it-2"}  # a dry run removes nothing
    assert names_of_servers(hetzner_sim) == {"hz-done", "hz-live", "hz-expired"}
    assert sorted(r["resource"].split()[0] for r in dry if r["outcome"] == "would destroy" and r["account"] in mine) \
        == ["hz-done", "hz-expired", "tp-it-0", "tp-it-2"]

    caplog.set_level(logging.INFO, logger="prefect.task_runs")  # the suite runs Prefect at WARNING
    state = reaper(return_state=True)
    rows = [r for r in state.result() if r["account"] in mine]
    assert names_of_vms(pve) == {"tp-it-1"}  # owned by the RUNNING flow run
    assert names_of_servers(hetzner_sim) == {"hz-live"}
    destroyed = {r["resource"].split()[0]: r for r in rows if r["outcome"] == "destroyed"}
    assert set(destroyed) == {"tp-it-0", "tp-it-2", "hz-done", "hz-expired"}
    assert destroyed["tp-it-0"]["reason"] == f"owning run {done} is over"
    assert destroyed["tp-it-2"]["reason"].startswith("expired at ")
    assert destroyed["tp-it-0"]["pool"] == "it" and destroyed["tp-it-0"]["account"] == f"proxmox {cluster}"
    problems = {r["account"]: r for r in rows if r["outcome"] not in ("destroyed", "would destroy")}
    assert problems[f"proxmox {down}"]["outcome"] == "unreachable"
    assert "127.0.0.1:" in problems[f"proxmox {down}"]["reason"]
    assert problems["hetzner no-such-project"]["outcome"] == "not usable"
    assert problems["hetzner no-such-project"]["pool"] == orphan_pool
    assert f"proxmox {cluster}" not in problems
    assert ReapTarget("proxmox", cluster, (pool,)) in reap_targets()  # swept once, with the pools that use it
    assert any(f"proxmox {down} is unreachable" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert any("destroyed tp-it-0" in r.getMessage() for r in caplog.records)

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(state.state_details.flow_run_id))])))
    assert artifact.key == ARTIFACT_KEY and artifact.type == "table"
    table = json.loads(str(artifact.data))
    assert {row["resource"].split()[0] for row in table if row["outcome"] == "destroyed"} >= set(destroyed)
    assert "sim-token" not in str(artifact.data) and "00000000-sim0-token" not in str(artifact.data)

    again = [r for r in reaper() if r["account"] in mine and r["outcome"] == "destroyed"]
    assert again == []  # idempotent: nothing left to remove
    assert names_of_vms(pve) == {"tp-it-1"}


def test_run_checker_asks_once_and_never_for_non_flow_run_ids() -> None:
    asked: list[str] = []
    finished = run_checker(lambda run: asked.append(run) is None)
    run_id = str(uuid.uuid4())
    assert finished(run_id) and finished(run_id)
    assert not finished("run-1")  # not a flow run id: only its expiry can remove the resource
    assert asked == [run_id]
