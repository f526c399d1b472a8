"""Staging on a real sshd host: apps uploaded, venvs built on the host, shards run there over SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from testpilot.environments.base import AcquireRequest
from testpilot.environments.config import EnvironmentConfig, ServiceConfig
from testpilot.environments.ssh import SSHMachine, SSHMachineProvider
from testpilot.environments.staging import InstallSettings, StagedProvider, publish_sqlite
from testpilot.errors import ProvisioningError
from testpilot.execution.command import build_argv
from testpilot.execution.junit import parse_junit
from testpilot.execution.monitor import StreamMonitor
from testpilot.execution.runner import RemoteRunner, remote_env
from tests.conftest import FIXTURES
from tests.sim.sshd import KeyPair, SimulatedVM

from .support import install_settings

pytestmark = pytest.mark.sshd
ALPHA = FIXTURES / "minisuite" / "apps" / "alpha"


def _staged(vm: SimulatedVM, key: KeyPair, install: InstallSettings, scratch: Path) -> StagedProvider:
    machine = SSHMachine(name=vm.name, host=vm.address, port=vm.port, user=vm.user, host_key=vm.host_key,
                         private_key=key.private_openssh)
    inner = SSHMachineProvider([machine], poll_interval=0, stage_apps=False)
    return StagedProvider(inner, install=install, scratch=scratch)


def _request(services: dict[str, ServiceConfig] | None = None) -> AcquireRequest:
    return AcquireRequest(pool="remote", config=EnvironmentConfig(provider="ssh", services=services or {}),
                          run_id="run-1", apps={"alpha": str(ALPHA)},
                          requirements={"alpha": str(ALPHA / "requirements.txt")})


def test_stage_installs_and_runs_over_ssh(sshd_vm: SimulatedVM, client_key: KeyPair, tmp_path: Path) -> None:
    provider = _staged(sshd_vm, client_key, install_settings(), tmp_path)
    env = provider.acquire(_request({"db": ServiceConfig(type="sqlite")}))
    try:
        assert env.workdir.startswith(str(sshd_vm.home)) and env.python["alpha"].endswith(".venvs/alpha/bin/python")
        assert (Path(env.workdir) / "alpha" / "tests" / "test_prices.py").is_file()
        assert (Path(env.workdir) / ".testpilot" / "testpilot_pytest.py").is_file()
        lines: list[str] = []
        runner = RemoteRunner(provider.connect(env), on_line=lambda _s, line: lines.append(line),
                              monitor=StreamMonitor())
        junit = f"{env.workdir}/.testpilot/junit.xml"
        argv = build_argv("pytest {tests}", tests=["tests/test_prices.py"], junit=junit, plugins=("testpilot_pytest",))
        outcome = runner.run(argv, cwd=f"{env.workdir}/alpha", env=remote_env(env, "alpha", {"PYTHONPATH": "src"}, {}),
                             timeout=120)
        results = parse_junit(runner.fetch(junit, tmp_path), app="alpha", shard=0, environment=env.id, host=env.host)
        runner.close()
        assert outcome.exit_code == 0 and results and all(r.outcome == "passed" for r in results)
        assert any("passed" in line for line in lines)  # streamed line by line
        # A SQLite database seeded on the worker is copied next to the apps, and the variable follows it.
        local_db = Path(env.databases["db"].removeprefix("sqlite:///"))
        local_db.write_bytes(b"")
        with provider.connect(env) as remote:
            published = publish_sqlite(env, remote)
        remote_path = published.env["TESTPILOT_DB_DB"].removeprefix("sqlite:///")
        assert remote_path.startswith(env.workdir) and Path(remote_path).is_file()
    finally:
        provider.release(env)
    assert not Path(env.workdir).exists()


def test_failed_install_is_a_provisioning_error_and_leaves_nothing(sshd_vm: SimulatedVM, client_key: KeyPair,
                                                                    tmp_path: Path) -> None:
    bad = install_settings().model_copy(update={"python": "/nonexistent/python3"})
    provider = _staged(sshd_vm, client_key, bad, tmp_path)
    with pytest.raises(ProvisioningError) as caught:
        provider.acquire(_request())
    assert caught.value.host == sshd_vm.address and caught.value.phase == "install"
    assert "install alpha" in caught.value.message and caught.value.hint
    assert not list((sshd_vm.home / "testpilot-runs").iterdir())  # the half-staged workdir is gone
