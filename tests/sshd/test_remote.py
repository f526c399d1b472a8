"""RemoteHost against real sshd VMs: streaming, host keys, SFTP, drops, abort, quoting."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from testpilot.environments.base import SSHAccess
from testpilot.errors import ConfigError, InfrastructureError, StreamAbort
from testpilot.execution.monitor import StreamMonitor
from testpilot.execution.remote import HostKeyRejected, RemoteHost
from tests.sim.procs import comm, pids_of_uid
from tests.sim.sshd import KeyPair, SimulatedVM, SSHDFarm

pytestmark = pytest.mark.sshd


def _host(vm: SimulatedVM, key: KeyPair, **options: object) -> RemoteHost:
    options.setdefault("host_key", vm.host_key)
    return RemoteHost(vm.address, vm.port, vm.user, private_key=key.private_openssh,
                      reconnect_delay=0, **options)  # type: ignore[arg-type]


def _group_alive(pgid: int) -> bool:
    """Any live process in group ``pgid``, read from /proc here (the VM is on this machine)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_streams_lines_in_order_while_the_command_runs(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    lines: list[tuple[str, str]] = []

    def on_line(stream: str, line: str) -> None:
        lines.append((stream, line))
        if line == "waiting":  # the command only ends once this line has reached us
            (sshd_vm.home / "go").touch()

    script = ("echo first; echo oops >&2; echo waiting; "
              "while [ ! -e go ]; do sleep 0.02; done; echo last; printf 'no newline'; exit 3")
    with _host(sshd_vm, client_key) as remote:
        result = remote.run(["sh", "-c", script], on_line=on_line, timeout=20)
    assert [line for stream, line in lines if stream == "stdout"] == ["first", "waiting", "last", "no newline"]
    assert [line for stream, line in lines if stream == "stderr"] == ["oops"]
    assert result.exit_code == 3 and not result.ok and not result.timed_out and result.reconnects == 0
    assert result.tail.splitlines()[-1] == "no newline" and "[stderr] oops" in result.tail


def test_no_output_is_lost_at_exit(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    # sshd can send the exit status before the last output; the runner must wait for EOF.
    counts = {"stdout": 0, "stderr": 0}
    last: dict[str, str] = {}

    def on_line(stream: str, line: str) -> None:
        counts[stream] += 1
        last[stream] = line

    with _host(sshd_vm, client_key) as remote:
        for _ in range(3):
            counts.update(stdout=0, stderr=0)
            result = remote.run(["sh", "-c", "seq 1 200000; seq 1 3000 >&2"], on_line=on_line,
                                monitor=StreamMonitor(), timeout=60)
            assert result.exit_code == 0
            assert counts == {"stdout": 200000, "stderr": 3000} and last == {"stdout": "200000", "stderr": "3000"}


def test_host_key_mismatch_after_rebuild_is_rejected(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    remote = _host(sshd_vm, client_key)
    assert remote.run(["true"]).exit_code == 0
    remote.close()
    sshd_vm.rebuild()
    with pytest.raises(HostKeyRejected) as caught:
        remote.connect()
    assert sshd_vm.address in str(caught.value) and "does not match the pinned key" in str(caught.value)
    assert caught.value.host == sshd_vm.address and caught.value.offered == sshd_vm.host_key
    assert "ssh-keyscan" in caught.value.hint


def test_unknown_host_key_is_rejected_without_tofu(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with pytest.raises(HostKeyRejected) as caught:
        _host(sshd_vm, client_key, host_key="").connect()
    assert "no key is pinned" in str(caught.value) and sshd_vm.address in str(caught.value)


def test_trust_on_first_use_records_the_key_then_pins_it(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    recorded: list[str] = []
    remote = _host(sshd_vm, client_key, host_key="", trust_on_first_use=True, on_new_host_key=recorded.append)
    assert remote.run(["true"]).exit_code == 0
    assert recorded == [sshd_vm.host_key] and remote.host_key == sshd_vm.host_key
    remote.close()
    sshd_vm.rebuild()  # a changed key after first use is a mismatch, not a second "first use"
    with pytest.raises(HostKeyRejected):
        remote.connect()
    assert recorded == [remote.host_key]


def test_sftp_upload_folder_and_download(sshd_vm: SimulatedVM, client_key: KeyPair, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg" / "__pycache__").mkdir(parents=True)
    (app / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (app / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (app / "run.sh").write_text("#!/bin/sh\necho \"<testsuite tests='1'/>\" > report.xml\necho ran\n")
    (app / "run.sh").chmod(0o755)
    with _host(sshd_vm, client_key) as remote:
        assert remote.upload_dir(app, "work/app") == 2
        result = remote.run(["./run.sh"], cwd="work/app")
        assert result.exit_code == 0 and result.tail == "ran"
        assert remote.download("work/app/report.xml", tmp_path / "out" / "junit.xml")
        assert not remote.download("work/app/missing.xml", tmp_path / "out" / "missing.xml")
    assert (tmp_path / "out" / "junit.xml").read_text().startswith("<testsuite")
    assert not (tmp_path / "out" / "missing.xml").exists()
    assert (sshd_vm.home / "work/app/pkg/mod.py").read_text() == "VALUE = 1\n"
    assert not (sshd_vm.home / "work/app/pkg/__pycache__").exists()


def test_one_drop_is_reconnected_and_the_command_rerun(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    lines: list[tuple[str, str]] = []

    def on_line(stream: str, line: str) -> None:
        lines.append((stream, line))
        if line == "started" and len(lines) == 1:
            sshd_vm.drop_connections()

    with _host(sshd_vm, client_key) as remote:
        result = remote.run(["sh", "-c", "echo started; sleep 0.3; echo finished"], on_line=on_line, timeout=20)
    assert result.exit_code == 0 and result.reconnects == 1
    assert [s for s, _ in lines] == ["stdout", "testpilot", "stdout", "stdout"]
    assert lines[-1] == ("stdout", "finished") and sshd_vm.address in lines[1][1]


def test_rerun_after_a_network_cut_stops_the_first_attempt(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    pids: list[str] = []

    def on_line(stream: str, line: str) -> None:
        if stream == "stdout" and line.startswith("pid "):
            pids.append(line.split()[1])
            if len(pids) == 1:
                sshd_vm.drop_connections(keep_commands=True)  # the first attempt runs on, orphaned

    with _host(sshd_vm, client_key) as remote:
        result = remote.run(["sh", "-c", "echo pid $$; sleep 0.3; echo done"], on_line=on_line, timeout=20)
    assert result.reconnects == 1 and result.exit_code == 0 and len(pids) == 2
    assert not _group_alive(int(pids[0]))


def test_second_drop_is_an_infrastructure_error(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    def on_line(stream: str, line: str) -> None:
        if line == "started":
            sshd_vm.drop_connections()

    with _host(sshd_vm, client_key) as remote, pytest.raises(InfrastructureError) as caught:
        remote.run(["sh", "-c", "echo started; sleep 5"], on_line=on_line, timeout=20)
    assert caught.value.host == sshd_vm.address and caught.value.details["dirty"] is True
    assert "after one reconnect" in str(caught.value)


def test_failed_reconnect_is_an_infrastructure_error(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with _host(sshd_vm, client_key, connect_timeout=2) as remote, pytest.raises(InfrastructureError) as caught:
        remote.run(["sh", "-c", "echo started; sleep 5"], on_line=lambda s, line: sshd_vm.stop(), timeout=20)
    assert "reconnect failed" in str(caught.value) and caught.value.details["dirty"] is True


def test_kernel_panic_aborts_and_stops_the_remote_command(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    script = "echo booting; echo 'Kernel panic - not syncing: Fatal exception'; sleep 30; touch survived"
    with _host(sshd_vm, client_key) as remote:
        result = remote.run(["sh", "-c", script], monitor=StreamMonitor(), timeout=60)
        assert result.pid is not None and not _group_alive(result.pid)
    assert result.aborted.startswith("kernel_panic: Kernel panic") and result.dirty and result.exit_code is None
    assert result.duration < 10  # not the 30 s the command would have taken
    assert not (sshd_vm.home / "survived").exists()
    with pytest.raises(StreamAbort) as caught:
        result.raise_if_aborted()
    assert caught.value.pattern == "kernel_panic" and caught.value.host == sshd_vm.address


def test_abort_kills_a_command_that_ignores_term(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    script = "trap '' TERM; echo 'Kernel panic - not syncing'; sleep 30"
    with _host(sshd_vm, client_key, kill_grace=0.3) as remote:
        result = remote.run(["sh", "-c", script], monitor=StreamMonitor(), timeout=60)
        assert result.aborted and result.pid is not None and not _group_alive(result.pid)


def test_timeout_stops_the_command(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with _host(sshd_vm, client_key, kill_grace=0.2) as remote:
        result = remote.run(["sh", "-c", "echo start; sleep 30"], timeout=0.5)
        assert result.timed_out and result.exit_code is None and result.pid is not None
        assert not _group_alive(result.pid)


def test_hostile_arguments_are_never_executed(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    hostile = [f"tests/test_a.py::test[$(touch {marker})]", f"x; touch {marker}", f"`touch {marker}`",
               "it's a \"quote\"", f"a && touch {marker} || true", "$HOME", "*", "new\nline", f"| tee {marker}"]
    seen: list[str] = []
    with _host(sshd_vm, client_key) as remote:
        result = remote.run(["printf", "%s\\0", *hostile], cwd="dir with 'quote' $(x)",
                            on_line=lambda s, line: seen.append(line))
        assert result.exit_code != 0  # the odd cwd does not exist, and cd does not run $(x)
        remote.run(["mkdir", "-p", "dir with 'quote' $(x)"])
        result = remote.run(["printf", "%s\\0", *hostile], cwd="dir with 'quote' $(x)",
                            env={"TEST_ID": f"$(touch {marker})"}, on_line=lambda s, line: seen.append(line))
        echoed = remote.run(["sh", "-c", 'printf %s "$TEST_ID"'], env={"TEST_ID": f"$(touch {marker})"})
    assert result.exit_code == 0
    assert "\n".join(seen[-2:]).split("\0")[:-1] == hostile
    assert echoed.tail == f"$(touch {marker})"
    assert not Path(marker).exists() and not list(sshd_vm.home.rglob("pwned*"))


def test_a_failing_callback_is_not_a_drop_and_stops_the_command(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    def on_line(stream: str, line: str) -> None:
        raise OSError(f"log sink gone at {line}")

    with _host(sshd_vm, client_key) as remote:
        with pytest.raises(OSError, match="log sink gone at pid"):
            remote.run(["sh", "-c", "echo pid $$; sleep 30"], on_line=on_line, timeout=60)
        assert remote.run(["true"]).exit_code == 0  # same connection, no reconnect happened
    assert not any(_group_alive(pid) for pid in pids_of_uid(sshd_vm.uid) if comm(pid) == "sleep")


def test_bad_env_name_is_a_config_error(sshd_vm: SimulatedVM, client_key: KeyPair) -> None:
    with _host(sshd_vm, client_key) as remote, pytest.raises(ConfigError):
        remote.run(["true"], env={"A;B": "x"})


def test_from_access_with_password(sshd_farm: SSHDFarm) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("password login needs the nss_wrapper shadow file, i.e. root")
    vm = sshd_farm.create_vm("pw", password="s3cret")
    access = SSHAccess(host=vm.address, port=vm.port, user=vm.user, host_key=vm.host_key)
    remote = RemoteHost.from_access(access, password="s3cret")
    assert "s3cret" not in repr(remote)
    with remote:
        assert remote.run(["id", "-u"]).tail == str(vm.uid)
    with pytest.raises(ConfigError) as caught:
        RemoteHost.from_access(access, password="wrong").connect()
    assert "s3cret" not in str(caught.value) and "wrong" not in str(caught.value)


def test_key_helpers_match_openssh(sshd_vm: SimulatedVM, tmp_path: Path) -> None:
    import subprocess

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from testpilot.execution.ssh_keys import fingerprint, load_private_key, parse_host_key

    pub = tmp_path / "host.pub"
    pub.write_text(sshd_vm.known_hosts_line + "\n")
    keygen = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True)  # noqa: S603,S607
    assert fingerprint(parse_host_key(sshd_vm.known_hosts_line)) == keygen.stdout.split()[1]
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    assert load_private_key(rsa_pem).get_name() == "ssh-rsa"
    with pytest.raises(ConfigError):
        load_private_key("not a key")
    with pytest.raises(ConfigError):
        parse_host_key("ssh-ed25519")


def test_upload_never_follows_a_symlink_out_of_the_folder(sshd_vm: SimulatedVM, client_key: KeyPair,
                                                          tmp_path: Path) -> None:
    # Before: a committed link to a worker file (say a Prefect profile) uploaded the file itself.
    secret = tmp_path / "profiles.toml"
    secret.write_text("PREFECT_API_KEY = 'worker-secret'\n")
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (app / "alias.py").symlink_to("pkg/mod.py")  # inside: made again as a link
    (app / "pkgs").symlink_to("pkg", target_is_directory=True)
    (app / "leak.toml").symlink_to(secret)
    remote = _host(sshd_vm, client_key)
    with pytest.raises(ConfigError) as caught:
        remote.upload_dir(app, "up")
    assert "leak.toml" in str(caught.value) and "outside" in str(caught.value)
    assert not (sshd_vm.home / "up" / "leak.toml").exists()
    assert not any("worker-secret" in p.read_text() for p in (sshd_vm.home / "up").rglob("*") if p.is_file())
    (app / "leak.toml").unlink()
    remote.upload_dir(app, "up")
    assert (sshd_vm.home / "up" / "alias.py").is_symlink()
    assert remote.run(["cat", "up/alias.py", "up/pkgs/mod.py"]).tail.count("VALUE = 1") == 2
    remote.close()


def test_fence_stops_the_running_command_and_refuses_to_reconnect(sshd_vm: SimulatedVM,
                                                                  client_key: KeyPair) -> None:
    import threading

    from testpilot.execution.remote import fence_hosts

    remote = _host(sshd_vm, client_key)
    remote.owner = "run-1"
    outcome: list[object] = []

    def stream() -> None:
        try:
            outcome.append(remote.run(["sh", "-c", "echo started; sleep 60"]))
        except InfrastructureError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=stream)
    thread.start()
    deadline = time.monotonic() + 10
    while not remote._running and time.monotonic() < deadline:
        time.sleep(0.05)
    [pid] = remote._running
    assert fence_hosts(sshd_vm.address, sshd_vm.port, owner="run-2", why="x") == 0  # another run's: untouched
    assert fence_hosts(sshd_vm.address, sshd_vm.port, owner="run-1", why="teardown began") == 1
    thread.join(timeout=10)
    assert not _group_alive(pid)
    [error] = outcome
    assert isinstance(error, InfrastructureError) and "teardown began" in str(error)  # no reconnect, no re-run
    with pytest.raises(InfrastructureError):
        remote.connect()
