"""The Proxmox provider against the Proxmox simulator over HTTPS, with sshd-backed VMs."""

from __future__ import annotations

import time

import pytest
from proxmoxer import ProxmoxAPI, ResourceException
from pydantic import SecretStr

from testpilot.environments.base import Provider
from testpilot.environments.hostkeys import run_over_ssh
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings
from testpilot.environments.reaper import reap
from testpilot.errors import ConfigError, InfrastructureError, ProvisioningError
from tests.providers.conftest import FakeTime, request
from tests.sim.proxmox import ProxmoxSim

pytestmark = pytest.mark.sshd


def test_provision_reset_destroy_over_ssh(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim) -> None:
    assert isinstance(proxmox, Provider)
    env = proxmox.acquire(request())
    assert env.transport == "ssh" and env.ssh is not None and env.ssh.host.startswith("127.")
    assert env.ssh.host != "127.0.0.1"  # the loopback interface of the guest is skipped
    vm = proxmox_sim.vms()[0]
    assert vm.config["ciuser"] == "testpilot" and "tp-run-run-1" in vm.config["tags"]
    assert [s["name"] for s in vm.snapshots] == ["tp-baseline"]
    run_over_ssh(env.ssh, "echo dirty > left-behind")  # pinned host key, RejectPolicy
    assert proxmox.health(env).ok

    proxmox.release(env)
    again = proxmox.acquire(request(run_id="run-2"))
    assert again.metadata == env.metadata and again.ssh == env.ssh  # same VM, same pinned key
    run_over_ssh(again.ssh, "test ! -e left-behind")
    assert [t.type for t in proxmox_sim.tasks.values()].count("qmclone") == 1  # reset did not clone
    assert "tp-run-run-2" in proxmox_sim.vms()[0].config["tags"]

    proxmox.destroy(again)
    assert proxmox_sim.vms() == []


def test_warm_snapshot_is_reset_to_while_the_requirements_stay_the_same(proxmox: ProxmoxProvider,
                                                                        proxmox_sim: ProxmoxSim) -> None:
    env = proxmox.acquire(request().model_copy(update={"warm_key": "k1"}))
    assert env.metadata["warm_key"] == ""  # a new member has no warm snapshot yet
    run_over_ssh(env.ssh, "echo venv > installed")
    assert proxmox.save_warm(env, "k1") == "tp-warm-k1"
    run_over_ssh(env.ssh, "echo run > left-behind")
    proxmox.release(env)

    again = proxmox.acquire(request(run_id="run-2").model_copy(update={"warm_key": "k1"}))
    assert again.metadata["warm_key"] == "k1"
    run_over_ssh(again.ssh, "test -e installed && test ! -e left-behind")  # installed, nothing of the run
    [vm] = proxmox_sim.vms()
    assert "tp-run-run-2" in vm.config["tags"]  # the rollback restored the snapshot's tags; set again after it
    # New requirements: the old warm snapshot is replaced, never piled up.
    assert proxmox.save_warm(again, "k2") == "tp-warm-k2"
    assert [s["name"] for s in vm.snapshots] == ["tp-baseline", "tp-warm-k2"]
    proxmox.release(again)

    other = proxmox.acquire(request(run_id="run-3").model_copy(update={"warm_key": "k1"}))
    assert other.metadata["warm_key"] == ""  # no snapshot of k1 any more: the baseline
    run_over_ssh(other.ssh, "test ! -e installed")
    proxmox.release(other)
    proxmox.wall_clock = lambda: time.time() + 25 * 3600  # a day later: too old, installed afresh
    stale = proxmox.acquire(request(run_id="run-3").model_copy(update={"warm_key": "k2"}))
    assert stale.metadata["warm_key"] == ""
    proxmox.wall_clock = time.time
    proxmox.release(stale)
    proxmox.settings = proxmox.settings.model_copy(update={"warm_snapshots": False})
    assert proxmox.save_warm(other, "k3") == ""
    off = proxmox.acquire(request(run_id="run-4").model_copy(update={"warm_key": "k2"}))
    assert off.metadata["warm_key"] == "" and [s["name"] for s in vm.snapshots] == ["tp-baseline", "tp-warm-k2"]
    proxmox.destroy(off)


def test_linked_and_full_clone_on_chosen_node(proxmox_settings: ProxmoxSettings, proxmox_sim: ProxmoxSim,
                                              fake_time: FakeTime) -> None:
    settings = proxmox_settings.model_copy(update={"full_clone": True, "nodes": ["pve2"]})
    provider = ProxmoxProvider(settings, sleep=fake_time.sleep, clock=fake_time.clock)
    env = provider.acquire(request())
    vm = proxmox_sim.vms()[0]
    assert env.metadata["node"] == "pve2" == vm.node
    assert "base-9000" not in vm.config["scsi0"]  # a full copy, not a linked clone
    provider.destroy(env)
    assert proxmox_sim.vms() == []


def test_clone_500_leaves_nothing(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim) -> None:
    proxmox_sim.faults.clone_http_500 = 1
    with pytest.raises(ProvisioningError) as caught:
        proxmox.acquire(request())
    assert caught.value.details["status_code"] == 500
    assert "storage 'local-lvm'" in caught.value.details["reason"]  # the reason phrase carries the message
    assert proxmox_sim.vms() == []


def test_failed_clone_task_carries_exitstatus(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim) -> None:
    proxmox_sim.faults.clone_task_error = "clone failed: out of space on 'local-lvm'"
    proxmox_sim.timings.qmclone_linked = 5  # running first, then stopped with the error
    with pytest.raises(ProvisioningError) as caught:
        proxmox.acquire(request())
    assert caught.value.details["exitstatus"] == "clone failed: out of space on 'local-lvm'"
    assert proxmox_sim.vms() == []


def test_agent_never_up_times_out_with_diagnostics(proxmox_settings: ProxmoxSettings, proxmox_sim: ProxmoxSim,
                                                   fake_time: FakeTime) -> None:
    proxmox_sim.faults.agent_never_up = True
    provider = ProxmoxProvider(proxmox_settings.model_copy(update={"agent_timeout": 5}), sleep=fake_time.sleep,
                               clock=fake_time.clock)
    with pytest.raises(ProvisioningError) as caught:
        provider.acquire(request())
    assert "QEMU guest agent is not running" in str(caught.value)
    assert caught.value.details["diagnostics"].waited_seconds >= 5
    assert proxmox_sim.vms() == []


def test_slow_tasks_are_polled_with_the_injected_backoff(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim,
                                                         fake_time: FakeTime) -> None:
    proxmox_sim.faults.slow_factor = 1.0
    proxmox_sim.timings.qmclone_linked, proxmox_sim.timings.qmstart = 6, 3
    proxmox.acquire(request())
    assert sum(fake_time.sleeps) >= 9 and set(fake_time.sleeps) == {1.0}


def test_parameter_verification_and_locks(proxmox_sim: ProxmoxSim, fake_time: FakeTime) -> None:
    api = ProxmoxAPI(proxmox_sim.host, user="root@pam", password="sim-password", verify_ssl=True)
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").qemu(9000).clone.post(newid=50, full="maybe", colour="red")
    assert caught.value.status_code == 400 and caught.value.content == "Parameter verification failed."
    assert set(caught.value.errors) == {"newid", "full", "colour"}

    proxmox_sim.timings.qmclone_linked = proxmox_sim.timings.qmsnapshot = 10
    api.nodes("pve1").qemu(9000).clone.post(newid=120, name="locked-one")
    with pytest.raises(ResourceException, match="VM is locked \\(clone\\)"):
        api.nodes("pve1").qemu(120).config.post(cores=4)
    fake_time.sleep(10)
    api.nodes("pve1").qemu(120).config.post(cores=4)
    with pytest.raises(ResourceException, match="sshkeys"):
        api.nodes("pve1").qemu(120).config.post(sshkeys="ssh-ed25519 AAAA not-url-encoded")


def test_bad_credentials_are_config_errors(proxmox_settings: ProxmoxSettings) -> None:
    wrong = proxmox_settings.model_copy(update={"token_name": None, "password": SecretStr("nope")})
    with pytest.raises(ConfigError):
        ProxmoxProvider(wrong).acquire(request())
    unreachable = proxmox_settings.model_copy(update={"host": "127.0.0.1:1"})
    with pytest.raises(InfrastructureError):
        ProxmoxProvider(unreachable).acquire(request())


def test_reaper_removes_expired_and_orphaned(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim) -> None:
    proxmox.acquire(request(slot=0, run_id="finished-run"))
    proxmox.acquire(request(slot=1, run_id="live-run"))
    expired = proxmox.acquire(request(slot=2, run_id="live-run", expires_in=-10))
    decisions = reap(proxmox, is_run_finished=lambda run: run == "finished-run")
    assert sorted(d.resource.name for d in decisions) == ["tp-it-0", "tp-it-2"]
    assert [vm.vmid for vm in proxmox_sim.vms()] != [expired.metadata["vmid"]]
    assert [vm.config["name"] for vm in proxmox_sim.vms()] == ["tp-it-1"]


def test_a_vm_cloned_but_never_tagged_is_listed_by_its_pool_member(proxmox: ProxmoxProvider,
                                                                   proxmox_sim: ProxmoxSim) -> None:
    # A run killed between the clone and the configure call leaves a VM without tags: before, invisible to
    # the reaper for good. Now it is listed under "untagged:<pool>:<slot>", for the reaper to remove once
    # nobody holds that pool member (flows/reaper.py checks the member's lock).
    node = proxmox._template_node()
    vmid = int(proxmox.api.cluster.nextid.get())
    proxmox.wait_task(proxmox.api.nodes(node).qemu(9000).clone.post(newid=vmid, name="tp-it-3", full=0), "clone")
    decisions = reap(proxmox, is_run_finished=lambda run: run == "untagged:it:3")
    assert [(d.resource.name, d.resource.run_id) for d in decisions] == [("tp-it-3", "untagged:it:3")]
    assert proxmox_sim.vms() == []


def test_a_clone_that_loses_its_vmid_to_another_clone_asks_for_a_new_one(proxmox: ProxmoxProvider,
                                                                          proxmox_sim: ProxmoxSim) -> None:
    proxmox_sim.faults.clone_id_races = 2  # two other clients' clones take the ids nextid hands out
    env = proxmox.acquire(request())
    others = [vm for vm in proxmox_sim.vms() if vm.config.get("tags") == "other-client"]
    [mine] = [vm for vm in proxmox_sim.vms() if vm.config.get("tags") != "other-client"]
    assert [vm.vmid for vm in others] == [100, 101] and mine.vmid == 102 == env.metadata["vmid"]
    assert "tp-run-run-1" in mine.config["tags"]  # and the VMs it lost to are left alone
    proxmox.destroy(env)
    assert [vm.vmid for vm in proxmox_sim.vms()] == [100, 101]


def test_four_members_cloned_at_once_get_four_vms(proxmox: ProxmoxProvider, proxmox_sim: ProxmoxSim) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        envs = list(pool.map(lambda slot: proxmox.acquire(request(slot=slot)), range(4)))
    assert len({e.metadata["vmid"] for e in envs}) == 4 and len({e.ssh.host for e in envs if e.ssh}) == 4
    assert sorted(vm.vmid for vm in proxmox_sim.vms()) == sorted(e.metadata["vmid"] for e in envs)
    for env in envs:
        proxmox.destroy(env)
    assert proxmox_sim.vms() == []
