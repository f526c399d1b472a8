"""Private SSH keys as files the worker can hand to paramiko, without the key passing through a log.

Blocks hold a private key as ``SecretStr``; providers and ``SSHAccess`` take a key *path*.
``key_file`` writes the key once to ``<TESTPILOT_HOME>/keys/<sha256>.key`` (directory 0700,
file 0600, written to a temporary file and renamed, so a reader never sees half a key) and
reuses it while the key is unchanged. The file name is the key's hash, so nothing about the key
is guessable from it and two blocks with the same key share one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import SecretStr

from testpilot.errors import ConfigError
from testpilot.settings import get_settings

KEY_DIR = "keys"


def key_file(secret: SecretStr | str, *, home: Path | None = None) -> str:
    """Path of a 0600 file holding ``secret`` under a 0700 folder of TESTPILOT_HOME; written at most once."""
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not text.strip():
        raise ConfigError("the private key is empty", field="private_key", hint="paste the whole key, BEGIN to END")
    data = (text.strip() + "\n").encode()  # OpenSSH refuses a key without its final newline
    folder = Path(home or get_settings().home) / KEY_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)  # also when it existed with looser bits
    path = folder / f"{hashlib.sha256(data).hexdigest()}.key"
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data:
            os.chmod(path, 0o600)
            return str(path)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-")  # mkstemp creates it 0600
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return str(path)


def public_key_of(secret: SecretStr | str, passphrase: str | None = None) -> str:
    """The OpenSSH public line ('ssh-ed25519 AAAA...') of a private key."""
    from testpilot.execution.ssh_keys import load_private_key

    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    pkey = load_private_key(text, passphrase)
    return f"{pkey.get_name()} {pkey.get_base64()}"
