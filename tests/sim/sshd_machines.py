"""MachineFactory backed by the sshd harness (``tests.sim.sshd``): every simulated VM is a real sshd.

- snapshot = copy of home + host key; rollback = restore it (sshd restarts, as after a reboot);
- rebuild = fresh home + a NEW host key, or the host key cloud-init was given in user_data;
- an image (Hetzner snapshot, or a VM a clone is made from) is a copy of a home directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sim.machines import public_line
from tests.sim.sshd import SimulatedVM, require_sshd, sshd_missing_reason


class SshdMachine:
    def __init__(self, vm: SimulatedVM, images: Path) -> None:
        self.vm, self._images = vm, images
        self.name = vm.name

    host = property(lambda self: self.vm.address)
    port = property(lambda self: self.vm.port)
    user = property(lambda self: self.vm.user)
    host_key = property(lambda self: self.vm.host_key)
    running = property(lambda self: self.vm.running)

    def start(self) -> None:
        self.vm.start()

    def stop(self) -> None:
        self.vm.stop()

    def snapshot(self, name: str) -> None:
        self.vm.snapshot(name)

    def rollback(self, name: str) -> None:
        self.vm.rollback(name)

    def drop_snapshot(self, name: str) -> None:
        path = self.vm.snapshots.pop(name, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def export(self, name: str) -> Path:
        source = self.vm.snapshots[name] / "home" if name in self.vm.snapshots else self.vm.home
        target = Path(tempfile.mkdtemp(dir=self._images)) / "home"
        subprocess.run(["cp", "-a", "--", str(source), str(target)], check=True)  # noqa: S603,S607
        return target

    def rebuild(self, image: Any, host_key_private: str | None) -> None:
        was_running = self.vm.running
        self.vm.rebuild()  # fresh home and a new host key; restarts sshd if it ran
        if image is None and host_key_private is None:
            return
        self.vm.stop()
        if image is not None:
            seed_home(self.vm, Path(image))
        if host_key_private is not None:
            set_host_key(self.vm, host_key_private)
        if was_running:
            self.vm.start()

    def guest_file(self, relative: str) -> str | None:
        path = self.vm.home / relative
        return path.read_text() if path.is_file() else None

    def remove_guest_file(self, relative: str) -> None:
        (self.vm.home / relative).unlink(missing_ok=True)

    def destroy(self) -> None:
        self.vm.close()


def seed_home(vm: SimulatedVM, image: Path) -> None:
    """Lay an image's home over a fresh one, keeping the keys cloud-init injected, owned by the VM's uid."""
    keys = (vm.home / ".ssh" / "authorized_keys").read_text()
    shutil.rmtree(vm.home)
    subprocess.run(["cp", "-a", "--", str(image), str(vm.home)], check=True)  # noqa: S603,S607
    (vm.home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    old = vm.home / ".ssh" / "authorized_keys"
    merged = dict.fromkeys((old.read_text() if old.exists() else "").splitlines() + keys.splitlines())
    old.write_text("".join(f"{line}\n" for line in merged if line.strip()))
    old.chmod(0o600)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{vm.uid}:{vm.gid}", str(vm.home)], check=True)  # noqa: S603,S607


def set_host_key(vm: SimulatedVM, private_pem: str) -> None:
    # The harness has no API to install a given host key (cloud-init's ssh_keys); its key lives at
    # <root>/ssh_host_ed25519_key, which its sshd_config names, so we write that file pair.
    path = vm.root / "ssh_host_ed25519_key"
    path.write_text(private_pem if private_pem.endswith("\n") else private_pem + "\n")
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_text(public_line(private_pem) + f" {vm.name}-host\n")


class SshdMachines:
    """One sshd per VM under a private directory; ``close()`` stops and removes every one."""

    def __init__(self, root: Path | None = None, block: int = 0) -> None:
        reason = sshd_missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.root = Path(root or tempfile.mkdtemp(prefix="testpilot-simvms-"))
        self.root.chmod(0o755)
        self._images = self.root / "images"
        self._images.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._count = 0
        self.live: dict[str, SshdMachine] = {}

    def create(self, name: str, *, user: str, authorized_keys: list[str], image: Any = None,
               host_key_private: str | None = None) -> SshdMachine:
        with self._lock:
            self._count += 1
            unique = f"{name}-{self._count}"
        vm = SimulatedVM(unique, root=self.root / unique, authorized_keys=authorized_keys,
                         user=user if os.geteuid() == 0 else None)
        if image is not None:
            seed_home(vm, Path(image))
        if host_key_private is not None:
            set_host_key(vm, host_key_private)
        machine = SshdMachine(vm, self._images)
        self.live[unique] = machine
        return machine

    def close(self) -> None:
        for machine in list(self.live.values()):
            machine.destroy()
        self.live.clear()
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["SshdMachines", "SshdMachine", "require_sshd"]


@pytest.fixture
def machines() -> Iterator[SshdMachines]:
    """A factory of sshd-backed VMs for a simulator; every VM it made is stopped afterwards."""
    require_sshd()
    factory = SshdMachines()
    yield factory
    factory.close()
