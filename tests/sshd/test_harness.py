"""The sshd VM harness itself: distinct uid, snapshot/rollback, rebuild, drop, no leaks."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import paramiko
import pytest

from tests.sim.procs import descendants
from tests.sim.sshd import KeyPair, SimulatedVM, SSHDFarm, reap_stale_farms, require_sshd

pytestmark = pytest.mark.sshd


def _client(vm: SimulatedVM, key: KeyPair | None = None, password: str | None = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    key_type, key_b64 = vm.host_key.split()
    client.get_host_keys().add(vm.address if vm.port == 22 else f"[{vm.address}]:{vm.port}", key_type,
                               paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh)) if key else None
    client.connect(vm.address, vm.port, vm.user, pkey=pkey, password=password, allow_agent=False,
                   look_for_keys=False, timeout=5)
    return client


def _run(client: paramiko.SSHClient, command: str) -> str:
    _, out, _ = client.exec_command(command)
    return out.read().decode()


def test_vm_runs_as_distinct_uid_with_own_home(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with _client(sshd_vm, client_key) as client:
        uid, home = _run(client, "id -u; pwd").split()
    if os.geteuid() == 0:
        assert int(uid) == sshd_vm.uid != 0
    assert home == str(sshd_vm.home)
    assert sshd_vm.address.startswith("127.") and sshd_vm.address != "127.0.0.1"


def test_password_login(sshd_farm: SSHDFarm) -> None:
    if os.geteuid() != 0:
        pytest.skip("password login needs the nss_wrapper shadow file, i.e. root")
    vm = sshd_farm.create_vm("pw", password="hunter2 $(x)")
    with _client(vm, password="hunter2 $(x)") as client:
        assert _run(client, "echo ok").strip() == "ok"
    with pytest.raises(paramiko.AuthenticationException):
        _client(vm, password="wrong")


def test_snapshot_rollback_restores_home(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with _client(sshd_vm, client_key) as client:
        _run(client, "echo baseline > state")
    sshd_vm.snapshot("baseline")
    with _client(sshd_vm, client_key) as client:
        _run(client, "echo dirty > state; touch extra")
    sshd_vm.rollback("baseline")
    with _client(sshd_vm, client_key) as client:
        assert _run(client, "cat state; ls").split() == ["baseline", "state"]


def test_rebuild_changes_host_key_and_wipes_home(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    old_key = sshd_vm.host_key
    with _client(sshd_vm, client_key) as client:
        _run(client, "touch leftover")
    sshd_vm.rebuild()
    assert sshd_vm.host_key != old_key
    with _client(sshd_vm, client_key) as client:  # pinned to the NEW key: works, home is fresh
        assert _run(client, "ls").split() == []


def test_drop_connections_kills_sessions_but_keeps_listener(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    client = _client(sshd_vm, client_key)
    _, out, _ = client.exec_command("echo started; sleep 30")
    assert out.readline().strip() == "started"
    assert sshd_vm.drop_connections() >= 1
    assert out.read() == b""  # the stream ends: the session is gone
    transport = client.get_transport()
    assert transport is None or not transport.is_active() or out.channel.closed
    client.close()
    with _client(sshd_vm, client_key) as again:
        assert _run(again, "echo back").strip() == "back"
        _, out, _ = again.exec_command("echo started; sleep 30")
        assert out.readline().strip() == "started"
        sshd_vm.drop_connections_after(0).join()
        assert out.read() == b""


def test_close_leaves_no_processes(sshd_farm: SSHDFarm, client_key: KeyPair) -> None:
    vm = sshd_farm.create_vm("leak", authorized_keys=[client_key.public_openssh])
    pid = vm.pid
    assert pid is not None
    client = _client(vm, client_key)
    _, out, _ = client.exec_command("echo up; sleep 30")
    assert out.readline().strip() == "up"
    session_pids = descendants(pid)
    assert session_pids
    vm.close()
    client.close()
    assert [p for p in [pid, *session_pids] if _alive(p)] == []
    assert not vm.running and not vm.root.exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_missing_sshd_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.sim.sshd_support as harness

    monkeypatch.setattr(harness, "find_sshd", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="openssh-server"):
        harness.require_sshd()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        harness.require_sshd()


def test_farms_of_dead_processes_are_reaped() -> None:
    import shutil
    import subprocess
    import sys
    import tempfile
    import textwrap

    require_sshd()
    # A child process makes a farm and dies by SIGKILL: no atexit, no fixture teardown.
    script = textwrap.dedent("""
        import os, signal
        from tests.sim.sshd import SSHDFarm
        farm = SSHDFarm()
        vm = farm.create_vm("orphan")
        print(farm.root, vm.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    # A private parent (via TMPDIR), so that no other process's reaper gets there first.
    parent = Path(tempfile.mkdtemp(prefix="reap-test-"))
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,  # noqa: S603
                             cwd=Path(__file__).parents[2], env={**os.environ, "TMPDIR": str(parent)}).stdout.split()
        root, pid = Path(out[0]), int(out[1])
        assert root.parent == parent and root.exists() and _alive(pid)
        assert reap_stale_farms(parent) == 1
        assert not root.exists() and not _alive(pid)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
