"""Keys, discovery and the skip rule for the sshd harness (see ``tests/sim/sshd.py``)."""

from __future__ import annotations

import os
import random
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
NSS_WRAPPER_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
    "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
    "/usr/lib64/libnss_wrapper.so",
    "/usr/lib/libnss_wrapper.so",
)


# ---------------------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair in OpenSSH formats."""

    private_openssh: str
    public_openssh: str

    def write(self, path: Path) -> Path:
        """Write the private key to ``path`` (mode 0600) and the public key to ``path.pub``."""
        path.write_text(self.private_openssh)
        path.chmod(0o600)
        path.with_name(path.name + ".pub").write_text(self.public_openssh + "\n")
        return path


def generate_keypair(comment: str = "") -> KeyPair:
    """A fresh ed25519 key pair (in-process; much faster than spawning ssh-keygen)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}".strip())


# ---------------------------------------------------------------------------------- discovery
def find_sshd() -> str | None:
    found = shutil.which("sshd") or next((p for p in SSHD_CANDIDATES if os.path.exists(p)), None)
    return found


def find_nss_wrapper() -> str | None:
    return next((p for p in NSS_WRAPPER_CANDIDATES if os.path.exists(p)), None)


def sshd_missing_reason() -> str | None:
    """Why the harness cannot run here, or None when it can."""
    if find_sshd() is None:
        return "OpenSSH sshd not found (apt-get install -y openssh-server libnss-wrapper)"
    if os.geteuid() == 0 and find_nss_wrapper() is None:
        return "libnss_wrapper.so not found (apt-get install -y libnss-wrapper)"
    return None


def require_sshd() -> None:
    """Skip the calling test when sshd is missing, unless CI=true, where that is a failure."""
    reason = sshd_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"sshd harness unavailable under CI=true: {reason}")
    pytest.skip(f"sshd harness unavailable: {reason}")


def free_loopback_address(port: int = 22, attempts: int = 200) -> str:
    """A random 127.x.y.z on which ``port`` can be bound right now."""
    for _ in range(attempts):
        address = f"127.{random.randint(16, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        if _can_bind(address, port):
            return address
    raise RuntimeError(f"no free loopback address for port {port} after {attempts} tries")


def _can_bind(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
