"""The Provider protocol every environment adapter implements, and the Environment it hands out.

A provider is the one narrow seam per infrastructure: ``acquire`` returns an environment already
reset to its baseline, ``release`` hands it back to the pool, ``destroy`` removes it, and
``health`` checks it. ``Environment`` is plain data so it can cross task boundaries.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from testpilot.environments.config import EnvironmentConfig


class SSHAccess(BaseModel):
    """How to reach a remote environment. The secret itself stays in a Block; only a reference is here."""

    host: str
    port: int = 22
    user: str = "root"
    host_key: str = Field("", description="Pinned public host key, 'ssh-ed25519 AAAA...'.")
    key_file: str | None = Field(None, description="Path of a private key file on the worker, if any.")
    credentials_block: str | None = Field(None, description="Block holding the key or password.")


def database_variable(service: str) -> str:
    """The variable a test command reads a service's database URL from: ``TESTPILOT_DB_<SERVICE>``."""
    return "TESTPILOT_DB_" + service.upper().replace("-", "_")


class Environment(BaseModel):
    """One isolated environment, as handed out by a provider."""

    id: str = Field(description="Unique id, e.g. 'integration-0'.")
    pool: str
    provider: str
    slot: int = 0
    transport: Literal["local", "ssh"] = "local"
    workdir: str = Field(description="Working directory, on the worker (local) or the remote host (ssh).")
    ssh: SSHAccess | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Variables passed to test commands.")
    databases: dict[str, str] = Field(default_factory=dict, description="Service name -> SQLAlchemy URL.")
    python: dict[str, str] = Field(default_factory=dict, description="App -> Python interpreter path.")
    labels: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    dirty: bool = False

    @property
    def host(self) -> str:
        return self.ssh.host if self.ssh else "localhost"


class AcquireRequest(BaseModel):
    """What a run needs from a pool: the pool's config, which slot, the run identity and the apps."""

    pool: str
    config: EnvironmentConfig
    slot: int = 0
    run_id: str = Field(description="The owning flow run id; written into labels for the reaper.")
    apps: dict[str, str] = Field(default_factory=dict, description="App name -> local source folder.")
    requirements: dict[str, str | None] = Field(default_factory=dict,
                                                description="App name -> requirements file, if any.")
    expires_in: float = Field(6 * 3600, description="Seconds until the reaper may remove it.")
    warm_key: str = Field("", description="Fingerprint of the apps' installed requirements (set by staging): a "
                                          "provider that keeps warm snapshots resets to the one of this key.")


class Health(BaseModel):
    ok: bool
    detail: str = ""


@runtime_checkable
class Provider(Protocol):
    """What every environment adapter implements."""

    name: str

    def acquire(self, request: AcquireRequest) -> Environment:
        """Return an environment reset to its baseline. Cleans up whatever it made if it fails."""
        ...

    def release(self, env: Environment) -> None:
        """Hand the environment back to the pool (resetting or discarding run data)."""
        ...

    def destroy(self, env: Environment) -> None:
        """Remove the environment for good."""
        ...

    def health(self, env: Environment) -> Health:
        ...
