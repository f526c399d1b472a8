"""Simulators over the wire, sshd-backed VMs, and providers pointed at them (real proxmoxer and hcloud)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.core import Block

from testpilot.environments.base import AcquireRequest
from testpilot.environments.cloud import Backoff
from testpilot.environments.config import EnvironmentConfig
from testpilot.environments.hetzner import HetznerProvider, HetznerSettings
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings
from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair, generate_keypair
from tests.sim.sshd_machines import SshdMachines

NO_WAIT = Backoff(0.0, 1.0, 0.0)


class FakeTime:
    """One clock for the simulator and the provider: sleeping moves it, so slow tasks finish at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.25)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[KeyPair, str]:
    pair = generate_keypair("testpilot-client")
    path = tmp_path / "id_ed25519"
    pair.write(path)
    return pair, str(path)


@pytest.fixture
def proxmox_sim(machines: SshdMachines, monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> Iterator[ProxmoxSim]:
    sim = ProxmoxSim(machines=machines, clock=fake_time.clock).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.tls.ca_bundle))  # production keeps verify_ssl=True
    yield sim
    sim.stop()


@pytest.fixture
def proxmox_settings(proxmox_sim: ProxmoxSim, client_key: tuple[KeyPair, str]) -> ProxmoxSettings:
    return ProxmoxSettings(host=proxmox_sim.host, token_name="testpilot", token_value="00000000-sim0-token",
                           template_vmid=9000, ssh_public_keys=[client_key[0].public_openssh],
                           ssh_key_file=client_key[1], agent_timeout=30, task_timeout=60)


@pytest.fixture
def proxmox(proxmox_settings: ProxmoxSettings, fake_time: FakeTime) -> ProxmoxProvider:
    return ProxmoxProvider(proxmox_settings, backoff=Backoff(1.0, 1.0, 1.0), sleep=fake_time.sleep,
                           clock=fake_time.clock)


@pytest.fixture
def hetzner_sim(machines: SshdMachines, fake_time: FakeTime) -> Iterator[HetznerSim]:
    sim = HetznerSim(machines=machines, clock=fake_time.clock).start()
    yield sim
    sim.stop()


@pytest.fixture
def hetzner_settings(hetzner_sim: HetznerSim, client_key: tuple[KeyPair, str]) -> HetznerSettings:
    return HetznerSettings(token="sim-token", api_endpoint=hetzner_sim.url, ssh_public_key=client_key[0].public_openssh,
                           ssh_key_file=client_key[1], ssh_user="testuser", max_retries=4, action_timeout=60,
                           ssh_timeout=10)


@pytest.fixture
def hetzner(hetzner_settings: HetznerSettings, fake_time: FakeTime) -> HetznerProvider:
    return HetznerProvider(hetzner_settings, backoff=Backoff(1.0, 1.0, 1.0), sleep=fake_time.sleep,
                           clock=fake_time.clock)


def request(pool: str = "it", slot: int = 0, run_id: str = "run-1", expires_in: float = 3600) -> AcquireRequest:
    return AcquireRequest(pool=pool, slot=slot, run_id=run_id, expires_in=expires_in,
                          config=EnvironmentConfig(provider="proxmox"))


# -- blocks saved through the Prefect API (tests that take `saved` start the session's Prefect server) --

class Saved:
    """Saves blocks under unique names and deletes them afterwards, so other tests never see them."""

    def __init__(self) -> None:
        self.names: list[tuple[type[Block], str]] = []

    def __call__(self, block: Block, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        block.save(name)
        self.names.append((type(block), name))
        return name

    def track(self, kind: type[Block], name: str) -> None:
        self.names.append((kind, name))

    def cleanup(self) -> None:
        for kind, name in self.names:
            try:
                kind.delete(name, _sync=True)  # type: ignore[call-arg]
            except Exception:  # noqa: BLE001 - already gone
                pass


@pytest.fixture
def saved(prefect_api: str) -> Iterator[Saved]:
    tracker = Saved()
    yield tracker
    tracker.cleanup()
