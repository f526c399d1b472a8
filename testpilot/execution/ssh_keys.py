"""SSH key handling for remote runs: pinned host keys, fingerprints, private keys from text."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable

import paramiko

from testpilot.errors import ConfigError, InfrastructureError


class HostKeyRejected(InfrastructureError):
    """The host offered a key that is not the pinned one (or there is no pinned key and no TOFU)."""

    def __init__(self, message: str, *, host: str, offered: str, expected: str = "", hint: str = "") -> None:
        super().__init__(message, host=host, phase="connect", hint=hint, offered=offered, expected=expected,
                         dirty=False)
        self.offered, self.expected = offered, expected


def parse_host_key(text: str) -> paramiko.PKey:
    """A ``paramiko.PKey`` from ``'ssh-ed25519 AAAA...'`` (a known_hosts line or .pub also works)."""
    tokens = text.split()
    for index, token in enumerate(tokens[:-1]):
        if token.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                return paramiko.PKey.from_type_string(token, base64.b64decode(tokens[index + 1]))
            except (ValueError, paramiko.SSHException) as exc:
                raise ConfigError(f"host key {token} cannot be read: {exc}", field="host_key",
                                  hint="paste the key as printed by ssh-keyscan, e.g. 'ssh-ed25519 AAAA...'"
                                  ) from exc
    raise ConfigError("host key is not in OpenSSH format", field="host_key",
                      hint="paste the key as printed by ssh-keyscan, e.g. 'ssh-ed25519 AAAA...'")


def key_text(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as ssh-keygen -l prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """A private key from its OpenSSH/PEM text (never written to disk)."""
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError):
            continue
    raise ConfigError("the SSH private key cannot be read", field="private_key",
                      hint="give an unencrypted ed25519, ecdsa or RSA key, or its passphrase")


class UnknownHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """An unpinned key: accept and report it when ``on_first_use`` is given (TOFU), else reject it."""

    def __init__(self, host: str, port: int, on_first_use: Callable[[paramiko.PKey], None] | None) -> None:
        self.host, self.port, self.on_first_use = host, port, on_first_use

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.on_first_use is not None:
            self.on_first_use(key)
            client.get_host_keys().add(hostname, key.get_name(), key)
            return
        raise HostKeyRejected(
            f"{self.host}:{self.port} offered host key {fingerprint(key)} and no key is pinned for it",
            host=self.host, offered=key_text(key),
            hint=f"pin it after checking it out of band (ssh-keyscan -t ed25519 -p {self.port} {self.host}), "
                 "or enable trust_on_first_use explicitly")
