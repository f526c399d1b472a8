"""Simulated VMs backed by a real OpenSSH ``sshd`` on their own loopback address.

Each :class:`SimulatedVM` is one ``sshd -D`` process listening on ``127.x.y.z:port`` (all of
127.0.0.0/8 is loopback on Linux), with its own ed25519 host key and a home directory.

When the harness runs as root, the VM's login user is a *distinct uid* that exists only in a
private passwd file: sshd is started with ``LD_PRELOAD=libnss_wrapper.so`` and
``NSS_WRAPPER_PASSWD/GROUP/SHADOW`` pointing at files in the VM's directory, so sshd resolves
the user (and its privilege-separation user) without any edit to ``/etc/passwd``. Sessions then
run with that uid, and the home is owned by it. Without root, sshd runs as the current user and
logs in as that user (ports must then be >= 1024).

VM operations mirror what a cloud does to a machine:

- ``snapshot(name)`` copies the home and the host key;
- ``rollback(name)`` restores that copy and restarts sshd (a rollback reboots the guest);
- ``rebuild()`` makes a fresh home and a NEW host key (a pinned known_hosts entry must now fail);
- ``drop_connections()`` kills every live session and what it runs, keeping the listener up.

Every started sshd is registered for an ``atexit`` stop, and the pytest fixtures stop them too,
so no process leaks even if a test fails half way.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

from tests.sim.procs import comm, descendants, kill_all, pids_of_uid, pids_with_argument
from tests.sim.sshd_support import (
    KeyPair,
    find_nss_wrapper,
    find_sshd,
    free_loopback_address,
    generate_keypair,
    require_sshd,
    sshd_missing_reason,
)

__all__ = ["KeyPair", "SSHDFarm", "SimulatedVM", "client_key", "find_sshd", "free_loopback_address",
           "generate_keypair", "reap_stale_farms", "require_sshd", "sshd_farm", "sshd_missing_reason", "sshd_vm"]

FARM_PREFIX = "testpilot-sshd-"
OWNER_FILE = "owner.pid"
# OpenSSH's compiled-in privilege separation chroot; sshd refuses to start as root without it.
PRIVSEP_DIR = Path("/run/sshd")

_LIVE: set[SimulatedVM] = set()
_LIVE_LOCK = threading.Lock()
_UIDS = itertools.count(random.randint(200_000, 2_000_000) * 10)


# ----------------------------------------------------------------------------------------- VM
class SimulatedVM:
    """One sshd-backed machine. Create it through :class:`SSHDFarm` (or directly, then ``start()``).

    ``root`` is a private directory for this VM (config, keys, home, snapshots, log).
    """

    def __init__(self, name: str, *, root: Path, address: str | None = None, port: int | None = None,
                 authorized_keys: Sequence[str] = (), password: str | None = None,
                 user: str | None = None) -> None:
        self.sshd_path = find_sshd()
        if self.sshd_path is None:
            raise RuntimeError(sshd_missing_reason() or "sshd missing")
        self.as_root = os.geteuid() == 0
        self.name = name
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._port = port if port is not None else (22 if self.as_root else 2222)
        self._address = address or free_loopback_address(self._port)
        self.authorized_keys: list[str] = list(authorized_keys)
        self.password = password
        if self.as_root:
            self._user = user or f"vm-{name}"[:31]
            self.uid = next(_UIDS)
            self.gid = self.uid
        else:
            me = pwd.getpwuid(os.getuid())
            self._user, self.uid, self.gid = me.pw_name, me.pw_uid, me.pw_gid
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.snapshots: dict[str, Path] = {}
        self._write_host_key()
        self._fresh_home()
        self._write_identity_files()
        self._write_config()

    # ---------------------------------------------------------------- accessors
    @property
    def address(self) -> str:
        return self._address

    @property
    def port(self) -> int:
        return self._port

    @property
    def user(self) -> str:
        return self._user

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def host_key(self) -> str:
        """The public host key, ``ssh-ed25519 AAAA...`` (no comment)."""
        return " ".join(self._host_key_path.with_suffix(".pub").read_text().split()[:2])

    @property
    def known_hosts_line(self) -> str:
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.host_key}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> None:
        """Start sshd and wait until it accepts TCP connections."""
        if self.running:
            return
        if self.as_root:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        argv = [str(self.sshd_path), "-D", "-e", "-f", str(self.root / "sshd_config")]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,  # noqa: S603
                                      stderr=subprocess.STDOUT, env=self._sshd_env(),
                                      start_new_session=True)
        with _LIVE_LOCK:
            _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._close_log()
                raise RuntimeError(f"sshd for VM {self.name} exited with {self._proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd for VM {self.name} not listening on {self.address}:{self.port} "
                           f"after {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sshd and every session it started."""
        proc = self._proc
        if proc is not None:
            # Sessions outlive the listener, so they go first.
            self.drop_connections()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            self._proc = None
        if self.as_root:
            # The uid is this VM's alone, so whatever still runs as it (orphans reparented to init
            # after a session-only drop) belongs to the VM and goes with it.
            kill_all(pids_of_uid(self.uid))
        self._close_log()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete everything the VM has on disk."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SimulatedVM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- VM operations
    def snapshot(self, name: str) -> None:
        """Copy the home and host key under ``name`` (replacing an older one of that name)."""
        target = self.root / "snapshots" / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        _copy_tree(self.home, target / "home")
        for path in (self._host_key_path, self._host_key_path.with_suffix(".pub")):
            shutil.copy2(path, target / path.name)
        self.snapshots[name] = target

    def rollback(self, name: str) -> None:
        """Restore snapshot ``name``; running sessions die and sshd restarts, as on a real rollback."""
        source = self.snapshots.get(name)
        if source is None:
            raise KeyError(f"VM {self.name} has no snapshot {name!r}; has {sorted(self.snapshots)}")
        was_running = self.running
        self.stop()
        _restore_tree(source / "home", self.home)
        for path in (self._host_key_path, self._host_key_path.with_suffix(".pub")):
            shutil.copy2(source / path.name, path)
        if was_running:
            self.start()

    def rebuild(self) -> None:
        """A fresh home (with the authorized keys) and a NEW host key; sshd restarts."""
        was_running = self.running
        self.stop()
        self._write_host_key()
        self._fresh_home()
        if was_running:
            self.start()

    def drop_connections(self, *, keep_commands: bool = False) -> int:
        """Kill every live session; the listener stays. Returns how many processes were killed.

        By default the commands the sessions run die too (a crashed guest). ``keep_commands=True``
        kills only the sshd session processes, so commands run on as orphans, as after a network cut.
        """
        if self._proc is None:
            return 0
        killed = 0
        # New sessions may fork while we kill, so repeat until the tree is empty.
        for _ in range(20):
            children = descendants(self._proc.pid)
            if keep_commands:
                children = [pid for pid in children if comm(pid) == "sshd"]
            if not children:
                break
            killed += kill_all(children)
            time.sleep(0.01)
        return killed

    def drop_connections_after(self, delay: float, *, keep_commands: bool = False) -> threading.Timer:
        """Fault injection from outside a test's callbacks (say, a simulator API): drop in ``delay`` s."""
        timer = threading.Timer(delay, self.drop_connections, kwargs={"keep_commands": keep_commands})
        timer.daemon = True
        timer.start()
        return timer

    def write_file(self, relative: str, text: str, mode: int = 0o644) -> Path:
        """Put a file in the VM's home, owned by the VM user (as if the guest had written it)."""
        path = self.home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        if self.as_root:
            os.chown(path, self.uid, self.gid)
        return path

    def add_authorized_key(self, public_key: str) -> None:
        """Authorize another key now and across rebuilds (cloud-init re-injects keys)."""
        self.authorized_keys.append(public_key)
        self._write_authorized_keys()

    # ---------------------------------------------------------------- internals
    @property
    def _host_key_path(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    def _write_host_key(self) -> None:
        generate_keypair(f"{self.name}-host").write(self._host_key_path)

    def _fresh_home(self) -> None:
        if self.home.exists():
            shutil.rmtree(self.home)
        (self.home / ".ssh").mkdir(parents=True)
        self._write_authorized_keys()
        for path in (self.home, self.home / ".ssh"):
            path.chmod(0o700)
        if self.as_root:
            for path in (self.home, self.home / ".ssh", self.home / ".ssh" / "authorized_keys"):
                os.chown(path, self.uid, self.gid)

    def _write_authorized_keys(self) -> None:
        path = self.home / ".ssh" / "authorized_keys"
        path.write_text("".join(f"{key}\n" for key in self.authorized_keys))
        path.chmod(0o600)
        if self.as_root:
            os.chown(path, self.uid, self.gid)

    def _write_identity_files(self) -> None:
        if not self.as_root:
            return
        sshd_user = pwd.getpwnam("sshd") if _has_user("sshd") else None
        passwd = [
            "root:x:0:0:root:/root:/bin/sh",
            f"{self.user}:x:{self.uid}:{self.gid}:simulated VM {self.name}:{self.home}:/bin/sh",
        ]
        if sshd_user is not None:
            passwd.append(f"sshd:x:{sshd_user.pw_uid}:{sshd_user.pw_gid}::{PRIVSEP_DIR}:/usr/sbin/nologin")
        else:
            passwd.append(f"sshd:x:65534:65534::{PRIVSEP_DIR}:/usr/sbin/nologin")
        passwd.append("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin")
        (self.root / "passwd").write_text("\n".join(passwd) + "\n")
        (self.root / "group").write_text(f"root:x:0:\n{self.user}:x:{self.gid}:\nnogroup:x:65534:\n")
        shadow_hash = "*"
        if self.password is not None:
            shadow_hash = _crypt_password(self.password)
        shadow = self.root / "shadow"
        shadow.write_text(f"root:*:19000:0:99999:7:::\n{self.user}:{shadow_hash}:19000:0:99999:7:::\n")
        shadow.chmod(0o600)

    def _sshd_env(self) -> dict[str, str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if self.as_root:
            env.update(LD_PRELOAD=str(find_nss_wrapper()), NSS_WRAPPER_PASSWD=str(self.root / "passwd"),
                       NSS_WRAPPER_GROUP=str(self.root / "group"),
                       NSS_WRAPPER_SHADOW=str(self.root / "shadow"))
        return env

    def _write_config(self) -> None:
        lines = [
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self._host_key_path}",
            f"PidFile {self.root / 'sshd.pid'}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {'yes' if self.password is not None else 'no'}",
            "KbdInteractiveAuthentication no",
            # PAM would look the user up in the real /etc/passwd; the wrapped NSS is enough for sshd.
            "UsePAM no",
            "PermitRootLogin no",
            f"AllowUsers {self.user}",
            "StrictModes yes",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 64:30:128",
            "MaxSessions 32",
            "LogLevel VERBOSE",
            # internal-sftp runs inside sshd, so it needs no sftp-server binary in a fixed place.
            "Subsystem sftp internal-sftp",
        ]
        (self.root / "sshd_config").write_text("\n".join(lines) + "\n")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"SimulatedVM({self.name!r}, {self.user}@{self.address}:{self.port}, running={self.running})"


class SSHDFarm:
    """Creates and owns simulated VMs under one directory; ``close()`` stops and removes them all.

    Every directory above ``root`` must be traversable by other users (the VM uids); the default,
    a fresh directory in the system temp dir, is.
    """

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        if root is None:
            reap_stale_farms()
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix=FARM_PREFIX))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        # Who owns this farm: a later farm reaps it if this process died without cleaning up
        # (SIGKILL, or SIGTERM, which skips atexit), as testcontainers' Ryuk does.
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.vms: dict[str, SimulatedVM] = {}

    def create_vm(self, name: str, *, authorized_keys: Sequence[str] = (), address: str | None = None,
                  port: int | None = None, password: str | None = None, start: bool = True) -> SimulatedVM:
        """A new VM with a fresh host key and home; started unless ``start=False``."""
        if name in self.vms:
            raise ValueError(f"VM {name!r} already exists in this farm")
        vm = SimulatedVM(name, root=self.root / name, address=address, port=port,
                         authorized_keys=authorized_keys, password=password)
        self.vms[name] = vm
        if start:
            try:
                vm.start()
            except Exception:
                vm.close()
                del self.vms[name]
                raise
        return vm

    def remove_vm(self, name: str) -> None:
        vm = self.vms.pop(name, None)
        if vm is not None:
            vm.close()

    def close(self) -> None:
        for name in list(self.vms):
            self.remove_vm(name)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SSHDFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reap_stale_farms(parent: Path | None = None) -> int:
    """Stop the sshd of every farm whose owning process is gone, and remove it. Returns how many."""
    reaped = 0
    for farm in Path(parent or tempfile.gettempdir()).glob(f"{FARM_PREFIX}*"):
        try:
            owner = int((farm / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        # Find listeners by their command line, not sshd's PidFile: sshd writes that after it
        # starts listening, so it may not exist yet.
        for pid in pids_with_argument(f"{farm}/"):
            kill_all([*descendants(pid), pid])
        shutil.rmtree(farm, ignore_errors=True)
        reaped += 1
    return reaped


# ------------------------------------------------------------------------------- pytest fixtures
@pytest.fixture
def sshd_farm() -> Iterator[SSHDFarm]:
    """A farm whose VMs are all stopped and removed after the test (skips/fails per require_sshd)."""
    require_sshd()
    # Not tmp_path: pytest makes it 0700 for root, and the VM's uid must be able to reach its home.
    farm = SSHDFarm()
    try:
        yield farm
    finally:
        farm.close()


@pytest.fixture
def client_key() -> KeyPair:
    """A fresh client key pair to authorize on VMs."""
    return generate_keypair("testpilot-client")


@pytest.fixture
def sshd_vm(sshd_farm: SSHDFarm, client_key: KeyPair) -> SimulatedVM:
    """One running VM that authorizes ``client_key``."""
    return sshd_farm.create_vm("vm1", authorized_keys=[client_key.public_openssh])


# ---------------------------------------------------------------------------------- internals
def _copy_tree(source: Path, target: Path) -> None:
    # cp -a keeps owners (the VM uid) and modes; shutil.copytree does not keep owners.
    subprocess.run(["cp", "-a", "--", str(source), str(target)], check=True)  # noqa: S603,S607


def _restore_tree(source: Path, target: Path) -> None:
    """Make ``target`` what ``source`` is. PVE's rollback costs the same however much the snapshot holds
    (LVM-thin, ZFS), so only what differs is copied back and what is new is deleted (rsync compares
    size and mtime, and keeps owners, modes and hard links); without rsync, the whole tree is copied."""
    rsync = shutil.which("rsync")
    if rsync and target.is_dir():
        subprocess.run([rsync, "-aH", "--delete", "--", f"{source}/", f"{target}/"],  # noqa: S603
                       check=True, capture_output=True)
        return
    shutil.rmtree(target, ignore_errors=True)
    _copy_tree(source, target)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _crypt_password(password: str) -> str:
    # openssl passwd -6 gives a SHA-512 crypt hash; Python's crypt module is gone in 3.13.
    result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),  # noqa: S603,S607
                            capture_output=True, check=True)
    return result.stdout.decode().strip()


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for vm in live:
        try:
            vm.stop(timeout=2.0)
        except OSError as exc:  # a best effort at interpreter exit
            if exc.errno != errno.ESRCH:
                raise


atexit.register(_stop_all)
