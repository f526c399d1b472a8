"""The Hetzner provider against the Hetzner simulator over HTTP (real hcloud client), with sshd-backed servers."""

from __future__ import annotations

import pytest
import requests
from hcloud import APIException, Client

from testpilot.environments.base import Provider
from testpilot.environments.hetzner import HetznerProvider, HetznerSettings
from testpilot.environments.hostkeys import run_over_ssh
from testpilot.environments.reaper import reap
from testpilot.errors import InfrastructureError, ProvisioningError
from tests.providers.conftest import FakeTime, request
from tests.sim.hetzner import HetznerSim
from tests.sim.hetzner_schema import validate_response

pytestmark = pytest.mark.sshd

SCRIPTS = {"reset": "script",
           # In the simulator a reboot acts on these markers, as a reboot into a new btrfs default subvolume would.
           "baseline_script": "mkdir -p .sim && echo baseline > .sim/btrfs-snapshot-on-boot",
           "reset_script": "mkdir -p .sim && echo baseline > .sim/btrfs-rollback-on-boot"}


def snapshots(sim: HetznerSim) -> list[int]:
    return [i["id"] for i in sim.images.values() if i["type"] == "snapshot"]


def test_rebuild_reset_gives_a_new_pinned_host_key(hetzner: HetznerProvider, hetzner_sim: HetznerSim) -> None:
    assert isinstance(hetzner, Provider)
    env = hetzner.acquire(request())
    assert env.ssh is not None and env.ssh.host == hetzner_sim.live_servers()[0]["public_net"]["ipv4"]["ip"]
    labels = hetzner_sim.live_servers()[0]["labels"]
    assert labels["tp-run"] == "run-1" and labels["tp-pool"] == "it" and labels["tp-baseline"].isdigit()
    run_over_ssh(env.ssh, "echo dirty > left-behind")

    hetzner.release(env)
    assert hetzner_sim.live_servers()[0]["labels"]["tp-run"] == "idle"
    again = hetzner.acquire(request(run_id="run-2"))
    assert again.metadata == env.metadata and again.ssh.host_key != env.ssh.host_key
    run_over_ssh(again.ssh, "test ! -e left-behind")
    with pytest.raises(InfrastructureError, match="does not match"):
        run_over_ssh(env.ssh, "true")  # the old pinned key must be refused after a rebuild

    hetzner.destroy(again)
    assert hetzner_sim.live_servers() == [] and snapshots(hetzner_sim) == []


def test_btrfs_script_reset_then_reboot(hetzner_settings: HetznerSettings, hetzner_sim: HetznerSim,
                                        fake_time: FakeTime) -> None:
    provider = HetznerProvider(hetzner_settings.model_copy(update=SCRIPTS), sleep=fake_time.sleep,
                               clock=fake_time.clock)
    env = provider.acquire(request())
    run_over_ssh(env.ssh, "echo dirty > left-behind")
    provider.release(env)
    again = provider.acquire(request(run_id="run-2"))
    run_over_ssh(again.ssh, "test ! -e left-behind")
    assert again.ssh == env.ssh  # the rollback restores the same host key, pinned from the labels
    assert [a["command"] for a in hetzner_sim.actions.values()].count("reboot_server") == 2
    provider.destroy(again)
    assert hetzner_sim.live_servers() == []


def test_rate_limit_storm_mid_provision_fails_cleanly(hetzner: HetznerProvider, hetzner_sim: HetznerSim,
                                                      fake_time: FakeTime) -> None:
    hetzner_sim.faults.rate_limit_after = 4       # past the server creation
    hetzner_sim.faults.rate_limit_storm = 7       # longer than max_retries=4, shorter than clean-up's budget
    hetzner_sim.faults.rate_limit_reset_seconds = 3
    with pytest.raises(ProvisioningError) as caught:
        hetzner.acquire(request())
    assert caught.value.details["code"] == "rate_limit_exceeded"
    assert hetzner_sim.live_servers() == [] and snapshots(hetzner_sim) == []
    assert fake_time.sleeps and max(fake_time.sleeps) <= 4  # waited for RateLimit-Reset, not a blind 60 s


def test_short_rate_limit_is_ridden_out(hetzner: HetznerProvider, hetzner_sim: HetznerSim) -> None:
    hetzner_sim.faults.rate_limit_storm = 3
    env = hetzner.acquire(request())
    assert [s for _, _, s in hetzner_sim.requests].count(429) == 3
    hetzner.destroy(env)


def test_locked_server_is_retried(hetzner: HetznerProvider, hetzner_sim: HetznerSim, fake_time: FakeTime) -> None:
    env = hetzner.acquire(request())
    hetzner.release(env)
    hetzner_sim.timings.stop_server = 3
    client = Client("sim-token", api_endpoint=hetzner_sim.url, poll_interval=0)
    client.servers.get_by_id(env.metadata["server_id"]).power_off()  # someone else's action is running
    hetzner.acquire(request(run_id="run-2"))
    assert [s for _, _, s in hetzner_sim.requests].count(423) >= 1
    hetzner.destroy(env)
    assert hetzner_sim.live_servers() == []


@pytest.mark.parametrize("fault", ["create_5xx", "action_error"])
def test_create_failures_leave_nothing(fault: str, hetzner: HetznerProvider, hetzner_sim: HetznerSim) -> None:
    if fault == "create_5xx":
        hetzner_sim.faults.create_errors.append((503, "unavailable_fault", "service temporarily unavailable"))
    else:
        hetzner_sim.faults.action_errors["start_server"] = ("action_failed", "host crashed")
    with pytest.raises(ProvisioningError) as caught:
        hetzner.acquire(request())
    assert caught.value.details["code"] in ("unavailable_fault", "action_failed")
    assert hetzner_sim.live_servers() == []


def test_existing_ssh_key_is_reused_and_a_clash_is_reported(hetzner: HetznerProvider, hetzner_sim: HetznerSim,
                                                            hetzner_settings: HetznerSettings) -> None:
    client = Client("sim-token", api_endpoint=hetzner_sim.url, poll_interval=0)
    client.ssh_keys.create(name="testpilot", public_key=hetzner_settings.ssh_public_key)
    with pytest.raises(APIException) as conflict:
        client.ssh_keys.create(name="other", public_key=hetzner_settings.ssh_public_key)
    assert conflict.value.code == "uniqueness_error"
    hetzner.destroy(hetzner.acquire(request()))  # 409 on upload -> the existing key is used
    assert len(hetzner_sim.ssh_keys) == 1
    clash = HetznerProvider(hetzner_settings.model_copy(update={"ssh_public_key": "ssh-ed25519 "
                            "AAAAC3NzaC1lZDI1NTE5AAAAIGuHTjZW7SDDLcuX+Q3rfk3k2DfyOpktUQJCxskAMR5d"}))
    with pytest.raises(ProvisioningError, match="holds a different key"):
        clash.acquire(request())


def test_schema_validation_pagination_selectors_and_wholesale_labels(hetzner_sim: HetznerSim) -> None:
    headers = {"Authorization": "Bearer sim-token"}
    bad = requests.post(f"{hetzner_sim.url}/servers", json={"name": "x", "image": "debian-12"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    assert bad.json()["error"]["details"]["fields"][0]["name"] == "server_type"
    assert requests.get(f"{hetzner_sim.url}/servers?per_page=many", headers=headers).status_code == 400

    client = Client("sim-token", api_endpoint=hetzner_sim.url, poll_interval=0)
    from hcloud.images import Image
    from hcloud.server_types import ServerType
    for n in range(30):
        client.servers.create(name=f"s{n}", server_type=ServerType(name="cx22"), image=Image(name="debian-12"),
                              labels={"team": "a" if n % 3 else "b", "n": str(n)}, start_after_create=False)
    page = requests.get(f"{hetzner_sim.url}/servers?per_page=25&page=2", headers=headers).json()
    assert len(page["servers"]) == 5 and page["meta"]["pagination"]["last_page"] == 2
    assert validate_response("/servers", "get", 200, page) == []
    assert len(client.servers.get_all()) == 30  # hcloud follows next_page
    assert len(client.servers.get_all(label_selector="team=b")) == 10
    assert len(client.servers.get_all(label_selector="team!=b,n in (1,2,3)")) == 2
    assert len(client.servers.get_all(label_selector="!team")) == 0
    server = client.servers.get_by_name("s1")
    server.update(labels={"only": "this"})
    assert client.servers.get_by_id(server.id).labels == {"only": "this"}


def test_reaper_removes_expired_and_orphaned(hetzner: HetznerProvider, hetzner_sim: HetznerSim) -> None:
    hetzner.acquire(request(slot=0, run_id="finished-run"))
    hetzner.acquire(request(slot=1, run_id="live-run"))
    hetzner.acquire(request(slot=2, run_id="live-run", expires_in=-10))
    decisions = reap(hetzner, is_run_finished=lambda run: run == "finished-run")
    assert sorted(d.resource.name for d in decisions) == ["tp-it-0", "tp-it-2"]
    assert [s["name"] for s in hetzner_sim.live_servers()] == ["tp-it-1"]
    assert len(snapshots(hetzner_sim)) == 1
