"""The SSH machine provider against real sshd VMs, and its conformance to the Provider protocol."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from testpilot.environments.base import AcquireRequest, Environment, Provider
from testpilot.environments.config import EnvironmentConfig
from testpilot.environments.ssh import SSHMachine, SSHMachineProvider, machine_from_settings
from testpilot.errors import ConfigError, ProvisioningError
from tests.sim.sshd import KeyPair, SimulatedVM, SSHDFarm, generate_keypair

pytestmark = pytest.mark.sshd


def _machine(vm: SimulatedVM, key: KeyPair, **fields: object) -> SSHMachine:
    values: dict[str, object] = {"name": vm.name, "host": vm.address, "port": vm.port, "user": vm.user,
                                 "host_key": vm.host_key, "private_key": key.private_openssh}
    values.update(fields)
    return SSHMachine.model_validate(values)


def _provider(*machines: SSHMachine, **options: object) -> SSHMachineProvider:
    return SSHMachineProvider(machines, poll_interval=0, remote_options={"reconnect_delay": 0},
                              **options)  # type: ignore[arg-type]


def _request(slot: int = 0, apps: dict[str, str] | None = None, run_id: str = "run-1") -> AcquireRequest:
    return AcquireRequest(pool="ssh-pool", config=EnvironmentConfig(provider="ssh"), slot=slot, run_id=run_id,
                          apps=apps or {})


def test_conforms_to_the_provider_protocol(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    provider = _provider(_machine(sshd_vm, client_key))
    assert isinstance(provider, Provider) and provider.name == "ssh"
    for method in ("acquire", "release", "destroy", "health"):
        ours = list(inspect.signature(getattr(provider, method)).parameters)
        theirs = list(inspect.signature(getattr(Provider, method)).parameters)[1:]
        assert ours == theirs, method


def test_acquire_health_release_lifecycle(sshd_vm: SimulatedVM, client_key: KeyPair, tmp_path: Path) -> None:
    app = tmp_path / "shop"
    app.mkdir()
    (app / "test_shop.py").write_text("def test_ok():\n    assert True\n")
    provider = _provider(_machine(sshd_vm, client_key))
    env = provider.acquire(_request(apps={"shop": str(app)}, run_id="flow/run 1;x"))
    assert isinstance(env, Environment) and env.transport == "ssh" and env.id == "ssh-pool-0"
    assert env.ssh is not None and env.ssh.host == sshd_vm.address and env.ssh.host_key == sshd_vm.host_key
    assert env.workdir == "testpilot-runs/flow_run_1_x-0" and env.labels["testpilot-run"] == "flow/run 1;x"
    staged = sshd_vm.home / env.metadata["apps"]["shop"] / "test_shop.py"
    assert staged.read_text().startswith("def test_ok")
    assert provider.health(env).ok
    provider.release(env)
    assert not (sshd_vm.home / env.workdir).exists() and (sshd_vm.home / "testpilot-runs").is_dir()
    provider.destroy(env)  # existing machine: destroy only releases, and twice is harmless
    assert sshd_vm.running


def test_reset_command_restores_the_baseline_before_hand_out(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    sshd_vm.write_file("reset.sh", "#!/bin/sh\nrm -rf state && echo clean > state && echo reset >> resets\n",
                       mode=0o755)
    provider = _provider(_machine(sshd_vm, client_key, reset_command="./reset.sh"))
    env = provider.acquire(_request())
    with provider.remote(env) as remote:
        remote.run(["sh", "-c", "echo dirty > state"])
    provider.release(env)
    provider.acquire(_request(run_id="run-2"))
    assert (sshd_vm.home / "state").read_text() == "clean\n"
    assert (sshd_vm.home / "resets").read_text() == "reset\nreset\n"


def test_failing_reset_is_a_provisioning_error(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    provider = _provider(_machine(sshd_vm, client_key, reset_command=["sh", "-c", "echo no snapshot >&2; exit 4"]))
    with pytest.raises(ProvisioningError) as caught:
        provider.acquire(_request())
    assert sshd_vm.address in str(caught.value) and "exited with 4" in str(caught.value)
    assert "no snapshot" in str(caught.value) and caught.value.details["dirty"] is True


def test_rebooting_reset_waits_for_a_new_boot(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    sshd_vm.write_file("boot-id", "boot-1\n")
    # "Reboots" by writing a new boot id and killing its own sshd session: the connection drops.
    reset = ["sh", "-c", "echo boot-2 > boot-id; kill -9 $PPID; sleep 5"]
    provider = _provider(_machine(sshd_vm, client_key, reset_command=reset, reset_reboots=True,
                                  boot_id_command=["cat", "boot-id"]), reboot_timeout=10)
    env = provider.acquire(_request())
    assert env.transport == "ssh" and (sshd_vm.home / "boot-id").read_text() == "boot-2\n"


def test_reset_that_never_reboots_times_out_with_diagnostics(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    ticks = iter(range(100))
    provider = _provider(_machine(sshd_vm, client_key, reset_command=["true"], reset_reboots=True,
                                  boot_id_command=["echo", "same-boot"]),
                         reboot_timeout=3, clock=lambda: float(next(ticks)), sleep=lambda _: None)
    with pytest.raises(ProvisioningError) as caught:
        provider.acquire(_request())
    assert "did not come back" in str(caught.value) and "has not rebooted yet" in str(caught.value)


def test_health_of_a_stopped_machine_names_the_host(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    provider = _provider(_machine(sshd_vm, client_key), connect_timeout=2)
    env = provider.acquire(_request())
    sshd_vm.stop()
    health = provider.health(env)
    assert not health.ok and sshd_vm.address in health.detail


def test_trust_on_first_use_records_the_key(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    learned: list[tuple[str, str]] = []
    provider = _provider(_machine(sshd_vm, client_key, host_key="", trust_on_first_use=True),
                         on_new_host_key=lambda name, key: learned.append((name, key)))
    env = provider.acquire(_request())
    assert learned == [(sshd_vm.name, sshd_vm.host_key)]
    assert env.ssh is not None and env.ssh.host_key == sshd_vm.host_key


def test_release_refuses_paths_outside_the_base(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    provider = _provider(_machine(sshd_vm, client_key))
    env = provider.acquire(_request())
    for bad in ("testpilot-runs", "testpilot-runs/../", ".", "/"):
        with pytest.raises(ConfigError):
            provider.release(env.model_copy(update={"workdir": bad}))
    assert (sshd_vm.home / env.workdir).is_dir()


def test_slot_beyond_the_machines_is_a_config_error(sshd_farm: SSHDFarm, client_key: KeyPair) -> None:
    vm = sshd_farm.create_vm("only", authorized_keys=[client_key.public_openssh])
    with pytest.raises(ConfigError) as caught:
        _provider(_machine(vm, client_key)).acquire(_request(slot=1))
    assert "no slot 1" in str(caught.value)


def test_secrets_stay_out_of_repr_and_errors() -> None:
    machine = SSHMachine(name="m", host="127.0.0.1", password="pa55word", private_key="-----BEGIN KEY")
    assert "pa55word" not in repr(machine) and "BEGIN" not in repr(machine)
    with pytest.raises(ConfigError) as caught:
        machine_from_settings({"name": "m", "host": "h", "port": 0, "password": "pa55word"})
    assert "port" in caught.value.field and "pa55word" not in str(caught.value)
    with pytest.raises(ConfigError):
        SSHMachineProvider([machine, machine])


def test_trust_on_first_use_records_nothing_when_the_login_is_refused(sshd_vm: SimulatedVM,
                                                                      client_key: KeyPair) -> None:
    # Before: the key was recorded (and saved to the block) during the handshake, before authentication.
    learned: list[tuple[str, str]] = []
    stranger = generate_keypair("not-authorized")
    provider = _provider(_machine(sshd_vm, stranger, host_key="", trust_on_first_use=True),
                         on_new_host_key=lambda name, key: learned.append((name, key)))
    with pytest.raises(ProvisioningError) as caught:
        provider.acquire(_request())
    assert "login as" in str(caught.value) and "was refused" in str(caught.value) and learned == []
