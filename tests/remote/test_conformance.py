"""One conformance test for all four providers, each as the pipeline uses it.

Local as it is; SSH machines, Proxmox VE and Hetzner Cloud wrapped in the StagedProvider, against a
real sshd host and the two simulators. Each must: implement the Provider protocol; hand out a healthy
environment with the app installed and runnable; hand back; on the next acquire give the same member
*reset to baseline* (what the last run left is gone); and destroy or release it for good.
"""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testpilot.environments.base import AcquireRequest, Environment, Provider
from testpilot.environments.cloud import Backoff
from testpilot.environments.config import EnvironmentConfig
from testpilot.environments.hetzner import HetznerProvider, HetznerSettings
from testpilot.environments.local import LocalProvider
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings
from testpilot.environments.ssh import SSHMachine, SSHMachineProvider
from testpilot.environments.staging import StagedProvider
from tests.conftest import FIXTURES
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair, SSHDFarm

from .support import install_settings

pytestmark = pytest.mark.sshd
GAMMA = FIXTURES / "minisuite" / "apps" / "gamma"
FAST = Backoff(0.05, 1.5, 0.5)


def _request(kind: str, run_id: str) -> AcquireRequest:
    return AcquireRequest(pool="conformance", config=EnvironmentConfig(provider=kind), run_id=run_id,  # type: ignore[arg-type]
                          apps={"gamma": str(GAMMA)}, requirements={"gamma": str(GAMMA / "requirements.txt")})


def _staged(inner: Provider, tmp_path: Path) -> StagedProvider:
    return StagedProvider(inner, install=install_settings(), scratch=tmp_path / "scratch")


@pytest.fixture(params=["local", "ssh", "proxmox", "hetzner"])
def provider(request: pytest.FixtureRequest, tmp_path: Path, client_key: KeyPair) -> Iterator[Provider]:
    kind = request.param
    key_file = tmp_path / "id_ed25519"
    client_key.write(key_file)
    if kind == "local":
        yield LocalProvider(tmp_path / "home")
    elif kind == "ssh":
        farm: SSHDFarm = request.getfixturevalue("sshd_farm")
        vm = farm.create_vm("host1", authorized_keys=[client_key.public_openssh])
        machine = SSHMachine(name="host1", host=vm.address, port=vm.port, user=vm.user, host_key=vm.host_key,
                             private_key=client_key.private_openssh, reset_command="rm -rf -- marker")
        yield _staged(SSHMachineProvider([machine], poll_interval=0, stage_apps=False), tmp_path)
    elif kind == "proxmox":
        pve: ProxmoxSim = request.getfixturevalue("proxmox")
        settings = ProxmoxSettings(host=pve.host, token_name="testpilot", token_value="00000000-sim0-token",
                                   template_vmid=9000, ssh_public_keys=[client_key.public_openssh],
                                   ssh_key_file=str(key_file), ca_bundle=str(pve.tls.ca_bundle), agent_timeout=20)
        yield _staged(ProxmoxProvider(settings, backoff=FAST), tmp_path)
    else:
        hcloud: HetznerSim = request.getfixturevalue("hetzner")
        hsettings = HetznerSettings(token="sim-token", api_endpoint=hcloud.url,
                                    ssh_public_key=client_key.public_openssh, ssh_key_file=str(key_file),
                                    ssh_user="testuser", ssh_timeout=20)
        yield _staged(HetznerProvider(hsettings, backoff=FAST), tmp_path)


def _run(env: Environment, provider: Provider, argv: list[str]) -> tuple[int | None, str]:
    """Run a command where the environment is: locally in its workdir, or on the host over SSH."""
    if env.transport == "local":
        done = subprocess.run(argv, cwd=env.workdir, capture_output=True, text=True, check=False)  # noqa: S603
        return done.returncode, done.stdout
    assert isinstance(provider, StagedProvider)
    with provider.connect(env) as remote:
        result = remote.run(argv, cwd=env.workdir, timeout=60)
    return result.exit_code, result.tail


def test_provider_conformance(provider: Provider) -> None:
    assert isinstance(provider, Provider) and provider.name in ("local", "ssh", "proxmox", "hetzner")
    for method in ("acquire", "release", "destroy", "health"):
        ours = list(inspect.signature(getattr(provider, method)).parameters)
        assert ours[:len(_protocol(method))] == _protocol(method), method

    env = provider.acquire(_request(provider.name, "run-1"))
    assert provider.health(env).ok and env.id and env.pool == "conformance"
    python = env.python["gamma"]
    code, out = _run(env, provider, [python, "-c", "import pytest, sys; print(sys.prefix)"])
    assert code == 0, out  # the app's venv is there, with its requirements
    code, out = _run(env, provider, ["sh", "-c", "echo left > marker; ls gamma/tests"])
    assert code == 0 and "test_maths.py" in out
    provider.release(env)

    again = provider.acquire(_request(provider.name, "run-2"))
    try:
        assert again.id == env.id  # the same pool member, reused
        code, out = _run(again, provider, ["sh", "-c", "test ! -e marker && echo clean"])
        assert code == 0 and "clean" in out, "the next run must get the member reset to baseline"
    finally:
        provider.destroy(again)


def _protocol(method: str) -> list[str]:
    return list(inspect.signature(getattr(Provider, method)).parameters)[1:]
