"""What backs a simulated VM: an address on loopback, a host key, a home directory, snapshots.

``MachineFactory`` is the seam between the API simulators and the machines. ``FakeMachines`` keeps
everything in memory (no sshd, for API-only tests and the standalone demo without OpenSSH);
``tests.sim.sshd_machines`` backs each VM with a real sshd.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def new_host_key() -> tuple[str, str]:
    """A fresh ed25519 host key as (OpenSSH private PEM, 'ssh-ed25519 AAAA...' public line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    return private, public_line(private)


def public_line(private_pem: str) -> str:
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def fingerprint(public: str) -> str:
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Machine(Protocol):
    name: str
    host: str
    port: int
    user: str

    @property
    def host_key(self) -> str: ...           # public line of the current host key
    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def snapshot(self, name: str) -> None: ...
    def rollback(self, name: str) -> None: ...
    def drop_snapshot(self, name: str) -> None: ...
    def export(self, name: str) -> Any: ...   # an image other machines can be created from
    def rebuild(self, image: Any, host_key_private: str | None) -> None: ...
    def guest_file(self, relative: str) -> str | None: ...   # a file under the user's home
    def remove_guest_file(self, relative: str) -> None: ...
    def destroy(self) -> None: ...


class MachineFactory(Protocol):
    def create(self, name: str, *, user: str, authorized_keys: list[str], image: Any = None,
               host_key_private: str | None = None) -> Machine: ...

    def close(self) -> None: ...


class AddressPool:
    """Hands out 127.0.<block>.<n> addresses, so every VM has its own host like a real one."""

    def __init__(self, block: int) -> None:
        self._lock = threading.Lock()
        self._free = [f"127.0.{block}.{n}" for n in range(2, 255)]

    def take(self) -> str:
        with self._lock:
            return self._free.pop(0)

    def give_back(self, address: str) -> None:
        with self._lock:
            self._free.append(address)


@dataclass
class FakeMachine:
    """A machine that is only state: no process listens on its address."""

    name: str
    host: str
    user: str
    files: dict[str, str]
    _host_private: str
    _pool: AddressPool
    port: int = 22
    running: bool = False
    snapshots: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)

    @property
    def host_key(self) -> str:
        return public_line(self._host_private)

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def snapshot(self, name: str) -> None:
        self.snapshots[name] = (dict(self.files), self._host_private)

    def rollback(self, name: str) -> None:
        files, key = self.snapshots[name]
        self.files, self._host_private = dict(files), key

    def drop_snapshot(self, name: str) -> None:
        self.snapshots.pop(name, None)

    def export(self, name: str) -> Any:
        return dict(self.snapshots[name][0]) if name in self.snapshots else dict(self.files)

    def rebuild(self, image: Any, host_key_private: str | None) -> None:
        self.files = dict(image or {})
        self._host_private = host_key_private or new_host_key()[0]

    def guest_file(self, relative: str) -> str | None:
        return self.files.get(relative)

    def remove_guest_file(self, relative: str) -> None:
        self.files.pop(relative, None)

    def destroy(self) -> None:
        self.running = False
        self._pool.give_back(self.host)


class FakeMachines:
    """MachineFactory without processes; ``block`` picks the 127.0.<block>.x range."""

    def __init__(self, block: int = 60) -> None:
        self._pool = AddressPool(block)
        self._ids = itertools.count(1)

    def create(self, name: str, *, user: str, authorized_keys: list[str], image: Any = None,
               host_key_private: str | None = None) -> FakeMachine:
        files = dict(image or {})
        files[".ssh/authorized_keys"] = "\n".join(authorized_keys)
        return FakeMachine(name=name, host=self._pool.take(), user=user, files=files,
                           _host_private=host_key_private or new_host_key()[0], _pool=self._pool)

    def close(self) -> None:
        pass

