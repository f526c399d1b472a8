"""Fixtures of the remote-run tests: sshd-backed simulators on the real clock, and a worker key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sim.hetzner import HetznerSim
from tests.sim.proxmox import ProxmoxSim
from tests.sim.sshd import KeyPair, client_key, generate_keypair, require_sshd, sshd_farm, sshd_vm  # noqa: F401
from tests.sim.sshd_machines import SshdMachines


@pytest.fixture
def key() -> KeyPair:
    return generate_keypair("testpilot-worker")


@pytest.fixture
def proxmox(machines: SshdMachines) -> Iterator[ProxmoxSim]:
    sim = ProxmoxSim(machines=machines).start()
    yield sim
    sim.stop()


@pytest.fixture
def hetzner(machines: SshdMachines) -> Iterator[HetznerSim]:
    sim = HetznerSim(machines=machines).start()
    yield sim
    sim.stop()




@pytest.fixture
def run_logs_at_info() -> Iterator[None]:
    """The session keeps Prefect at WARNING (tests/conftest.py); these tests read the runs' INFO lines back."""
    import logging

    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
