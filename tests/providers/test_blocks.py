"""Environment blocks through the real Prefect API, and providers built from them against the simulators."""

from __future__ import annotations

import json
import logging
import os
import stat
import uuid
from pathlib import Path

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks.environments import (
    EnvironmentPool,
    HetznerProject,
    ProxmoxCluster,
    SSHMachine,
    provider_from_blocks,
)
from deployments.setup import register_blocks
from testpilot.environments.hetzner import HetznerProvider
from testpilot.environments.hostkeys import run_over_ssh
from testpilot.environments.keyfiles import key_file, public_key_of
from testpilot.environments.local import LocalProvider
from testpilot.environments.proxmox import ProxmoxProvider
from testpilot.environments.ssh import SSHMachineProvider
from testpilot.errors import ConfigError, InfrastructureError
from tests.providers.conftest import Saved, request
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair, generate_keypair
from tests.sim.sshd_machines import SshdMachines

TOKEN = "00000000-sim0-token"
PASSWORD = "pw-that-must-not-leak"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def login_key() -> KeyPair:
    return generate_keypair("testpilot-login")


# -- without Prefect ---------------------------------------------------------------------------------

def test_key_file_is_private_reused_and_named_by_hash(tmp_path: Path, login_key: KeyPair) -> None:
    first = Path(key_file(SecretStr(login_key.private_openssh), home=tmp_path))
    assert first.parent == tmp_path / "keys"
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert first.read_text().strip() == login_key.private_openssh.strip()
    assert login_key.private_openssh.split("\n")[1][:20] not in first.name  # the name is a hash, not the key
    os.chmod(first.parent, 0o755)
    first.write_text(first.read_text())  # same content: the file is reused, not rewritten
    before = first.stat().st_ino
    assert Path(key_file(login_key.private_openssh, home=tmp_path)) == first
    assert first.stat().st_ino == before
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700  # loosened bits are put back
    other = Path(key_file(generate_keypair().private_openssh, home=tmp_path))
    assert other != first and sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])
    with pytest.raises(ConfigError):
        key_file(SecretStr("  "), home=tmp_path)


def test_settings_merge_spec_with_the_block(login_key: KeyPair) -> None:
    cluster = ProxmoxCluster(host="pve.example.com", user="testpilot@pve", token_name="tp",
                             token_value=SecretStr(TOKEN), ssh_private_key=SecretStr(login_key.private_openssh))
    settings = cluster.settings({"template_vmid": 9000, "nodes": ["pve2"], "full_clone": True, "cores": 4,
                                 "memory_mb": 4096})
    assert (settings.host, settings.user, settings.token_name) == ("pve.example.com", "testpilot@pve", "tp")
    assert (settings.template_vmid, settings.nodes, settings.full_clone, settings.cores, settings.memory_mb) == (
        9000, ["pve2"], True, 4, 4096)
    assert settings.ssh_public_keys == [public_key_of(login_key.private_openssh)]  # derived from the private key
    assert settings.ssh_key_file and Path(settings.ssh_key_file).read_text().strip() == login_key.private_openssh.strip()

    with pytest.raises(ConfigError) as owned:
        cluster.settings({"template_vmid": 9000, "host": "elsewhere"}, field="environments.it.settings")
    assert owned.value.field == "environments.it.settings.host" and "ProxmoxCluster" in owned.value.hint
    with pytest.raises(ConfigError) as typo:
        cluster.settings({"template_vmid": 9000, "coress": 4}, field="environments.it.settings")
    assert typo.value.field == "environments.it.settings.coress" and "cores" in typo.value.hint
    with pytest.raises(ConfigError) as missing:
        cluster.settings({}, field="environments.it.settings")
    assert missing.value.field == "environments.it.settings.template_vmid"
    with pytest.raises(ConfigError) as no_auth:
        ProxmoxCluster(host="pve").settings({"template_vmid": 1})
    assert no_auth.value.field.endswith(".token_value")

    project = HetznerProject(token=SecretStr("tok"), image="debian-12", server_type="cx32",
                             ssh_private_key=SecretStr(login_key.private_openssh))
    hetzner = project.settings({"image": "123456", "ssh_user": "ci"})
    assert (hetzner.image, hetzner.server_type, hetzner.location, hetzner.ssh_user) == ("123456", "cx32", "fsn1", "ci")
    assert hetzner.ssh_public_key == public_key_of(login_key.private_openssh) and hetzner.ssh_key_file
    with pytest.raises(ConfigError) as no_key:
        HetznerProject(token=SecretStr("tok")).settings({})
    assert no_key.value.field.endswith(".ssh_private_key")

    assert isinstance(provider_from_blocks("local", {}), LocalProvider)  # needs no block
    with pytest.raises(ConfigError) as unknown:
        provider_from_blocks("vsphere", {}, pool="x")
    assert unknown.value.field == "environments.x.provider"


def test_secrets_stay_out_of_repr(login_key: KeyPair) -> None:
    blocks: list[Block] = [
        ProxmoxCluster(host="pve", token_name="tp", token_value=SecretStr(TOKEN), password=SecretStr(PASSWORD),
                       ssh_private_key=SecretStr(login_key.private_openssh)),
        HetznerProject(token=SecretStr(TOKEN), ssh_private_key=SecretStr(login_key.private_openssh)),
        SSHMachine(host="box", password=SecretStr(PASSWORD), private_key=SecretStr(login_key.private_openssh),
                   passphrase=SecretStr(PASSWORD))]
    for block in blocks:
        for text in (repr(block), str(block), block.model_dump_json()):
            assert TOKEN not in text and PASSWORD not in text and "PRIVATE KEY" not in text
    machine = SSHMachine(host="box", password=SecretStr(PASSWORD)).machine("box")
    assert PASSWORD not in repr(machine)


# -- through the Prefect API -------------------------------------------------------------------------

def test_blocks_round_trip_with_secrets_masked_on_the_server(saved: Saved, login_key: KeyPair,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    name = saved(ProxmoxCluster(host="pve.example.com:8006", token_name="tp", token_value=SecretStr(TOKEN),
                                password=SecretStr(PASSWORD), ssh_public_keys=["ssh-ed25519 AAAAextra"],
                                ssh_private_key=SecretStr(login_key.private_openssh)), "cluster")
    loaded = ProxmoxCluster.load(name)
    assert loaded.token_value is not None and loaded.token_value.get_secret_value() == TOKEN
    assert loaded.ssh_private_key is not None
    assert loaded.ssh_private_key.get_secret_value() == login_key.private_openssh
    with get_client(sync_client=True) as client:
        masked = client.read_block_document_by_name(name, ProxmoxCluster.get_block_type_slug(),
                                                    include_secrets=False)
    assert TOKEN not in json.dumps(masked.data) and PASSWORD not in json.dumps(masked.data)
    assert "PRIVATE KEY" not in json.dumps(masked.data)

    pool = saved(EnvironmentPool(provider="proxmox", size=3, target=name, spec={"template_vmid": 9000}), "pool")
    provider = provider_from_blocks("proxmox", {"pool": pool, "cores": 8}, pool="it", pool_size=3)
    assert isinstance(provider, ProxmoxProvider)
    assert provider.settings.cores == 8 and provider.settings.template_vmid == 9000
    assert provider.settings.ssh_public_keys[0] == "ssh-ed25519 AAAAextra" and len(provider.settings.ssh_public_keys) == 2
    assert TOKEN not in repr(provider.settings) and PASSWORD not in repr(provider.settings)
    logged = caplog.text
    assert TOKEN not in logged and PASSWORD not in logged and "PRIVATE KEY" not in logged


def test_missing_and_mismatched_blocks_are_config_errors(saved: Saved) -> None:
    with pytest.raises(ConfigError) as missing:
        provider_from_blocks("proxmox", {"cluster": "no-such-cluster", "template_vmid": 9000}, pool="it")
    error = missing.value
    assert error.field == "environments.it.settings.cluster" and "no-such-cluster" in error.message
    assert "deployments.setup" in error.hint and "prefect block ls" in error.hint

    with pytest.raises(ConfigError) as unnamed:
        provider_from_blocks("hetzner", {"image": "debian-12"}, pool="cloud")
    assert unnamed.value.field == "environments.cloud.settings.project"
    with pytest.raises(ConfigError) as no_pool:
        provider_from_blocks("hetzner", {"pool": "no-such-pool"}, pool="cloud")
    assert no_pool.value.field == "environments.cloud.settings.pool" and "no-such-pool" in no_pool.value.message

    box = saved(SSHMachine(host="127.0.0.1"), "box")
    with pytest.raises(ConfigError) as second:
        provider_from_blocks("ssh", {"machines": [box, "no-such-box"]}, pool="boxes")
    assert second.value.field == "environments.boxes.settings.machines[1]"
    with pytest.raises(ConfigError) as option:
        provider_from_blocks("ssh", {"machines": [box], "connect_timout": 3}, pool="boxes")
    assert option.value.field == "environments.boxes.settings.connect_timout"

    pool = saved(EnvironmentPool(provider="ssh", size=1, target=[box]), "boxes")
    with pytest.raises(ConfigError) as wrong:
        provider_from_blocks("proxmox", {"pool": pool}, pool="boxes")
    assert "is for ssh" in wrong.value.message
    with pytest.raises(ConfigError) as too_big:
        provider_from_blocks("ssh", {"pool": pool}, pool="boxes", pool_size=2)
    assert too_big.value.field == "environments.boxes.pool_size"
    assert isinstance(provider_from_blocks("ssh", {"pool": pool}, pool="boxes", pool_size=1), SSHMachineProvider)


def test_hetzner_provider_from_blocks_lists_the_project(saved: Saved, login_key: KeyPair) -> None:
    with HetznerSim() as sim:
        project = saved(HetznerProject(token=SecretStr("sim-token"), api_endpoint=sim.url, server_type="cx32",
                                       ssh_private_key=SecretStr(login_key.private_openssh)), "project")
        provider = provider_from_blocks("hetzner", {"project": project, "image": "ubuntu-24.04"}, pool="cloud")
        assert isinstance(provider, HetznerProvider)
        assert (provider.settings.image, provider.settings.server_type) == ("ubuntu-24.04", "cx32")
        assert provider.list_owned() == []  # the token from the block authenticates against the simulator
        wrong = saved(HetznerProject(token=SecretStr("wrong"), api_endpoint=sim.url,
                                     ssh_public_key=login_key.public_openssh), "wrong")
        with pytest.raises(InfrastructureError):
            provider_from_blocks("hetzner", {"project": wrong}).list_owned()


@pytest.mark.sshd
def test_proxmox_vm_acquired_through_blocks_trusts_the_ca_bundle(saved: Saved, proxmox_sim: ProxmoxSim,
                                                                 login_key: KeyPair,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # only the block's ca_bundle makes the simulator's CA trusted
    cluster = ProxmoxCluster(host=proxmox_sim.host, token_name="testpilot", token_value=SecretStr(TOKEN),
                             ca_bundle=str(proxmox_sim.tls.ca_bundle),
                             ssh_private_key=SecretStr(login_key.private_openssh))
    name = saved(cluster, "cluster")
    pool = saved(EnvironmentPool(provider="proxmox", size=2, target=name,
                                 spec={"template_vmid": 9000, "agent_timeout": 30, "task_timeout": 60}), "pool")
    provider = provider_from_blocks("proxmox", {"pool": pool, "cores": 4}, pool="it", pool_size=2)
    env = provider.acquire(request())
    assert env.ssh is not None and env.ssh.key_file and env.ssh.host_key
    assert proxmox_sim.vms()[0].config["cores"] == "4"
    run_over_ssh(env.ssh, "echo logged-in-with-the-block-key > proof")  # pinned host key, key file from the block
    provider.destroy(env)
    assert proxmox_sim.vms() == []

    untrusted = saved(cluster.model_copy(update={"ca_bundle": None}), "untrusted")
    with pytest.raises(InfrastructureError) as tls:
        provider_from_blocks("proxmox", {"cluster": untrusted, "template_vmid": 9000}).acquire(request())
    assert "certificate" in str(tls.value).lower()
    missing_ca = saved(cluster.model_copy(update={"ca_bundle": "/nonexistent/ca.pem"}), "missing-ca")
    with pytest.raises(ConfigError) as bad_path:
        provider_from_blocks("proxmox", {"cluster": missing_ca, "template_vmid": 9000})
    assert bad_path.value.field.endswith(".ca_bundle")


@pytest.mark.sshd
def test_ssh_machine_block_trusts_on_first_use_and_records_the_key(saved: Saved, machines: SshdMachines,
                                                                   login_key: KeyPair) -> None:
    vm = machines.create("box", user="testuser", authorized_keys=[login_key.public_openssh])
    vm.start()
    name = saved(SSHMachine(host=vm.host, port=vm.port, user=vm.user, trust_on_first_use=True,
                            private_key=SecretStr(login_key.private_openssh), workdir="runs"), "box")
    provider = provider_from_blocks("ssh", {"machines": [name], "connect_timeout": 5}, pool="boxes")
    env = provider.acquire(request(pool="boxes"))
    assert SSHMachine.load(name).host_key.split()[:2] == vm.host_key.split()[:2]  # recorded back into the block
    assert env.ssh is not None and env.ssh.key_file and env.ssh.credentials_block == f"testpilot-ssh-machine/{name}"
    assert stat.S_IMODE(Path(env.ssh.key_file).stat().st_mode) == 0o600
    provider.release(env)

    pinned = provider_from_blocks("ssh", {"machines": [name]})  # a later run: the key is pinned now
    assert isinstance(pinned, SSHMachineProvider) and pinned.machines[0].host_key == SSHMachine.load(name).host_key
    vm.vm.rebuild()  # a new host key: the pinned one must be refused, and the block keeps the old one
    assert not pinned.health(env).ok
    assert SSHMachine.load(name).host_key.split()[:2] != vm.host_key.split()[:2]


def test_setup_saves_blocks_from_variables_idempotently(saved: Saved, tmp_path: Path, login_key: KeyPair) -> None:
    key_path = login_key.write(tmp_path / "id_ed25519")
    suffix = uuid.uuid4().hex[:6]
    box = f"box-{suffix}"
    env = {"TESTPILOT_PROXMOX_HOST": "127.0.0.1:1", "TESTPILOT_PROXMOX_USER": "testpilot@pve",
           "TESTPILOT_PROXMOX_TOKEN_NAME": "tp", "TESTPILOT_PROXMOX_TOKEN_VALUE": TOKEN,
           "TESTPILOT_PROXMOX_TEMPLATE_VMID": "9000", "TESTPILOT_PROXMOX_POOL_SIZE": "3",
           "TESTPILOT_PROXMOX_NODES": "pve1, pve2", "TESTPILOT_PROXMOX_SSH_KEY_FILE": str(key_path),
           "TESTPILOT_HETZNER_TOKEN": "hz-token", "TESTPILOT_HETZNER_ENDPOINT": "http://127.0.0.1:1/v1",
           "TESTPILOT_SSH_MACHINES": json.dumps([{"name": box, "host": "10.0.0.5", "user": "ci",
                                                  "private_key_file": str(key_path),
                                                  "reset_command": "sudo /usr/local/sbin/reset"}])}
    for kind, name in ((ProxmoxCluster, "testpilot-proxmox"), (EnvironmentPool, "proxmox"),
                       (HetznerProject, "testpilot-hetzner"), (EnvironmentPool, "hetzner"), (SSHMachine, box),
                       (EnvironmentPool, "ssh")):
        saved.track(kind, name)
    first = register_blocks(env)
    assert first == ["testpilot-proxmox", "proxmox", "testpilot-hetzner", "hetzner", box, "ssh"]
    cluster = ProxmoxCluster.load("testpilot-proxmox")
    assert cluster.token_value is not None and cluster.token_value.get_secret_value() == TOKEN
    assert cluster.ssh_private_key is not None and "PRIVATE KEY" in cluster.ssh_private_key.get_secret_value()
    pool = EnvironmentPool.load("proxmox")
    assert (pool.size, pool.target, pool.spec["nodes"], pool.spec["template_vmid"]) == (
        3, "testpilot-proxmox", ["pve1", "pve2"], 9000)
    machine = SSHMachine.load(box)
    assert machine.reset_command == ["sudo", "/usr/local/sbin/reset"] and machine.private_key is not None
    assert EnvironmentPool.load("ssh").target == [box]

    machine.host_key = "ssh-ed25519 AAAAlearned"  # what trust on first use recorded
    machine.save(box, overwrite=True)
    assert register_blocks(env) == first  # again: same blocks, and the learned key is kept
    assert SSHMachine.load(box).host_key == "ssh-ed25519 AAAAlearned"

    with pytest.raises(ConfigError) as bad_json:
        register_blocks({"TESTPILOT_SSH_MACHINES": "[{"})
    assert bad_json.value.field == "TESTPILOT_SSH_MACHINES"
    with pytest.raises(ConfigError) as typo:
        register_blocks({"TESTPILOT_SSH_MACHINES": json.dumps([{"name": box, "host": "h", "prot": 2}])})
    assert typo.value.field == "TESTPILOT_SSH_MACHINES[0]" and "prot" in typo.value.message
