"""SSH host keys we generate for cloud servers, so they are pinned from the first connection.

The key goes to the server through cloud-init's ``ssh_keys``; its public half is kept in two labels
(hex, since label values allow no '+' or '/') so a later run can pin it without trusting on first use.
"""

from __future__ import annotations

import base64
import io
import shlex
import struct

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from testpilot.environments.base import SSHAccess
from testpilot.errors import InfrastructureError, ProvisioningError


def new_host_key() -> tuple[str, str]:
    """(OpenSSH private key PEM, 'ssh-ed25519 AAAA...')."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def key_labels(public: str) -> dict[str, str]:
    raw = base64.b64decode(public.split()[1])[-32:].hex()  # the 32-byte ed25519 point
    return {"tp-hostkey-a": raw[:32], "tp-hostkey-b": raw[32:]}


def key_from_labels(labels: dict[str, str]) -> str:
    try:
        raw = bytes.fromhex(labels["tp-hostkey-a"] + labels["tp-hostkey-b"])
    except (KeyError, ValueError) as exc:
        raise ProvisioningError("server has no pinned host key labels (tp-hostkey-a/b)", phase="reset",
                                hint="destroy the server; the next acquire creates one with a pinned key") from exc
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + raw
    return f"ssh-ed25519 {base64.b64encode(blob).decode()}"


def cloud_config(host_private: str, host_public: str, user: str) -> str:
    """cloud-init user data installing our host key (and a sudo user when ``user`` is not root)."""
    config: dict[str, object] = {"ssh_deletekeys": True, "ssh_genkeytypes": [],
                                 "ssh_keys": {"ed25519_private": host_private, "ed25519_public": host_public}}
    if user != "root":
        config["users"] = [{"name": user, "sudo": "ALL=(ALL) NOPASSWD:ALL", "shell": "/bin/bash"}]
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def run_over_ssh(access: SSHAccess, command: str, timeout: float = 600) -> None:
    """Run one command with the pinned host key (RejectPolicy); raise on a non-zero exit."""
    import paramiko
    client = paramiko.SSHClient()
    kind, blob = access.host_key.split()[:2]
    entry = access.host if access.port == 22 else f"[{access.host}]:{access.port}"
    client.get_host_keys().add(entry, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(access.host, access.port, access.user, key_filename=access.key_file,
                       timeout=30, allow_agent=False, look_for_keys=access.key_file is None)
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        status = stdout.channel.recv_exit_status()
        if status != 0:
            tail = io.StringIO(stderr.read().decode(errors="replace")).getvalue()[-500:]
            raise ProvisioningError(f"{shlex.split(command)[0] if command.strip() else 'command'} exited {status} "
                                    f"on {access.host}: {tail}", host=access.host, phase="reset",
                                    hint="check the reset script on the server")
    except (paramiko.SSHException, OSError) as exc:
        raise InfrastructureError(f"SSH to {access.user}@{access.host}:{access.port} failed: {exc}",
                                  host=access.host, phase="reset",
                                  hint="a BadHostKey error means the server is not the one we created") from exc
    finally:
        client.close()
