"""Blocks for remote environments, and the one place a provider is built from them.

``ProxmoxCluster`` and ``HetznerProject`` hold how to reach the infrastructure and the login key;
``SSHMachine`` holds one registered host; ``EnvironmentPool`` ties a provider to one of those
blocks plus provider settings. Secrets are ``SecretStr`` (masked in ``repr``, the UI and logs).
A private key reaches paramiko as a 0600 file written by ``testpilot.environments.keyfiles``.

A suite names blocks in ``environments.<pool>.settings``; ``provider_from_blocks`` reads them:

- ``{pool: <EnvironmentPool>}`` (other keys override the pool block's ``spec``), or
- ``{cluster: <ProxmoxCluster>, template_vmid: 9000, ...}`` for proxmox,
- ``{project: <HetznerProject>, image: ..., ...}`` for hetzner,
- ``{machines: [<SSHMachine>, ...], connect_timeout: ...}`` for ssh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from testpilot.environments.base import Provider
from testpilot.environments.hetzner import HetznerProvider, HetznerSettings
from testpilot.environments.keyfiles import key_file, public_key_of
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings
from testpilot.environments.ssh import SSHMachine as MachineModel
from testpilot.environments.ssh import SSHMachineProvider
from testpilot.errors import ConfigError

log = logging.getLogger("testpilot.blocks")

BLOCK_HINT = ("create it with `python -m deployments.setup` (see the TESTPILOT_* variables in its docstring) "
              "or in the UI; `prefect block ls` lists the saved blocks")
M = TypeVar("M", bound=BaseModel)


def _name(block: Block) -> str:
    return getattr(block, "_block_document_name", None) or "(unsaved)"


def _merge(model: type[M], owned: dict[str, Any], spec: Mapping[str, Any], *, field: str, block: str) -> M:
    """``model`` from the pool's ``spec`` plus the block's ``owned`` fields; errors name the spec key."""
    for key in spec:
        if key in owned:
            raise ConfigError(f"{key!r} comes from the {block} block, not from the pool's settings",
                              field=f"{field}.{key}", hint=f"set {key} on the {block} block")
        if key not in model.model_fields:
            known = ", ".join(sorted(k for k in model.model_fields if k not in owned))
            raise ConfigError(f"unknown setting {key!r}", field=f"{field}.{key}", hint=f"known settings: {known}")
    try:
        return model.model_validate({**spec, **owned})
    except ValidationError as exc:
        first = exc.errors()[0]  # the message names the problem, never the value
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}: {first['msg']}", field=f"{field}.{where}",
                          hint="see docs/environments.md for the settings of this provider") from None


class ProxmoxCluster(Block):
    """A Proxmox VE cluster: API address and credentials, and the key Testpilot logs into its VMs with."""

    _block_type_name = "Testpilot Proxmox Cluster"
    host: str = Field(description="API address, 'pve.example.com' or 'pve.example.com:8006'.")
    user: str = Field("root@pam", description="Token owner or login user, 'testpilot@pve'.")
    token_name: str | None = Field(None, description="API token id (after the '!'); preferred over a password.")
    token_value: SecretStr | None = Field(None, description="API token secret (a UUID).")
    password: SecretStr | None = Field(None, description="Password for ticket login, when there is no token.")
    verify_ssl: bool = Field(True, description="Check the API's TLS certificate. Keep on.")
    ca_bundle: str | None = Field(None, description="PEM file on the worker of the private CA to trust.")
    ssh_user: str = Field("testpilot", description="User cloud-init creates in each VM.")
    ssh_public_keys: list[str] = Field(default_factory=list, description="Keys cloud-init authorizes "
                                       "(the private key's own public half is added).")
    ssh_private_key: SecretStr | None = Field(None, description="Private key (OpenSSH text, no passphrase) "
                                              "Testpilot logs into the VMs with.")

    def settings(self, spec: Mapping[str, Any], *, field: str = "spec") -> ProxmoxSettings:
        """ProxmoxSettings: the pool's ``spec`` (template_vmid, nodes, cores, ...) plus this block's connection."""
        where = f"ProxmoxCluster {_name(self)}"
        if not ((self.token_name and self.token_value) or self.password):
            raise ConfigError("the cluster has neither an API token nor a password", field=f"{where}.token_value",
                              hint="set token_name and token_value (or password) on the block")
        if self.verify_ssl and self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ConfigError(f"CA bundle {self.ca_bundle} is not a file on this worker", field=f"{where}.ca_bundle",
                              hint="copy the CA's PEM to the worker, or clear ca_bundle to use the system store")
        keys = list(self.ssh_public_keys)
        key_path = None
        if self.ssh_private_key is not None:
            key_path = key_file(self.ssh_private_key)
            own = public_key_of(self.ssh_private_key)
            if all(k.split()[:2] != own.split() for k in keys):
                keys.append(own)
        owned = {"host": self.host, "user": self.user, "token_name": self.token_name,
                 "token_value": self.token_value, "password": self.password, "verify_ssl": self.verify_ssl,
                 "ca_bundle": self.ca_bundle, "ssh_user": self.ssh_user, "ssh_public_keys": keys,
                 "ssh_key_file": key_path}
        return _merge(ProxmoxSettings, owned, spec, field=field, block="ProxmoxCluster")


class HetznerProject(Block):
    """A Hetzner Cloud project: API token, defaults for new servers, and the login key."""

    _block_type_name = "Testpilot Hetzner Project"
    token: SecretStr = Field(description="Project API token with Read & Write permission.")
    api_endpoint: str = Field("https://api.hetzner.cloud/v1", description="API base URL.")
    location: str | None = Field("fsn1", description="Default location (a pool's spec may override it).")
    server_type: str = Field("cx22", description="Default server type.")
    image: str = Field("debian-12", description="Default image name, or the ID of your prepared snapshot.")
    ssh_public_key: str = Field("", description="Key put on new servers; derived from the private key if empty.")
    ssh_private_key: SecretStr | None = Field(None, description="Private key (OpenSSH text, no passphrase) "
                                              "Testpilot logs into the servers with.")

    def settings(self, spec: Mapping[str, Any], *, field: str = "spec") -> HetznerSettings:
        """HetznerSettings: this block's defaults, overridden by the pool's ``spec``, plus the connection."""
        public = self.ssh_public_key
        if not public and self.ssh_private_key is not None:
            public = public_key_of(self.ssh_private_key)
        if not public:
            raise ConfigError("the project has no SSH key for new servers",
                              field=f"HetznerProject {_name(self)}.ssh_private_key",
                              hint="set ssh_private_key (and optionally ssh_public_key) on the block")
        defaults = {"location": self.location, "server_type": self.server_type, "image": self.image}
        owned = {"token": self.token, "api_endpoint": self.api_endpoint, "ssh_public_key": public,
                 "ssh_key_file": key_file(self.ssh_private_key) if self.ssh_private_key is not None else None}
        return _merge(HetznerSettings, owned, {**defaults, **spec}, field=field, block="HetznerProject")

    def reaping_settings(self) -> HetznerSettings:
        """Enough to list and delete servers: no login key needed."""
        return HetznerSettings(token=self.token, api_endpoint=self.api_endpoint, ssh_public_key="")


class SSHMachine(Block):
    """A host you registered, reached over SSH (the domain model is testpilot.environments.ssh.SSHMachine)."""

    _block_type_name = "Testpilot SSH Machine"
    host: str = Field(description="Address or DNS name.")
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    host_key: str = Field("", description="Pinned public host key, 'ssh-ed25519 AAAA...' (see docs/ssh.md).")
    trust_on_first_use: bool = Field(False, description="Accept an unpinned key once and record it here.")
    password: SecretStr | None = None
    private_key: SecretStr | None = Field(None, description="Private key text (OpenSSH/PEM).")
    passphrase: SecretStr | None = Field(None, description="Passphrase of the private key, if it has one.")
    key_file: str | None = Field(None, description="A private key already on the worker, instead of the text.")
    os: str = Field("linux", description="Operating system, for reports.")
    workdir: str = Field("testpilot-runs", description="Base folder for run workdirs (relative: the home).")
    reset_command: list[str] = Field(default_factory=list, description="argv run before each hand-out.")
    reset_reboots: bool = Field(False, description="The reset command reboots the host.")
    boot_id_command: list[str] = Field(default_factory=lambda: ["cat", "/proc/sys/kernel/random/boot_id"],
                                       description="Prints an id that changes on every boot.")

    @field_validator("reset_command", "boot_id_command", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        import shlex

        return shlex.split(value) if isinstance(value, str) else value

    def machine(self, name: str | None = None) -> MachineModel:
        """The domain SSHMachine, named after this block; a private key is handed over as a 0600 file."""
        name = name or getattr(self, "_block_document_name", None)
        if not name:
            raise ConfigError("an SSH machine block must be saved (or given a name) before use", field="name",
                              hint="save the block under the name the pool lists")
        try:
            return MachineModel(
                name=name, host=self.host, port=self.port, user=self.user, host_key=self.host_key, os=self.os,
                password=_reveal(self.password), passphrase=_reveal(self.passphrase),
                key_file=key_file(self.private_key) if self.private_key is not None else self.key_file,
                trust_on_first_use=self.trust_on_first_use, reset_command=tuple(self.reset_command),
                reset_reboots=self.reset_reboots, boot_id_command=tuple(self.boot_id_command),
                workdir=self.workdir, credentials_block=f"{self.get_block_type_slug()}/{name}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"{where}: {first['msg']}", field=f"SSHMachine {name}.{where}",
                              hint="see docs/ssh.md for the fields of an SSH machine") from None


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class EnvironmentPool(Block):
    """A named pool: which provider, how many environments, which block it runs on, and provider settings."""

    _block_type_name = "Testpilot Environment Pool"
    provider: Literal["proxmox", "hetzner", "ssh", "local"] = Field(description="Which provider serves the pool.")
    size: int = Field(1, ge=1, le=100, description="Most environments it may hold; a suite's pool_size may "
                                                   "not exceed it.")
    target: str | list[str] = Field("", description="ProxmoxCluster or HetznerProject block name; for ssh, "
                                                    "the SSHMachine block names.")
    spec: dict[str, Any] = Field(default_factory=dict, description="Provider settings, e.g. template_vmid, cores.")


B = TypeVar("B", bound=Block)


def load_block(kind: type[B], name: object, *, field: str) -> B:
    """Load a block by name; a missing one is a ConfigError naming the field and the block."""
    label = kind.__name__
    if not isinstance(name, str) or not name:
        raise ConfigError(f"needs the name of a {label} block", field=field, hint=BLOCK_HINT)
    try:
        loaded = kind.load(name, _sync=True)  # type: ignore[call-arg]  # async_dispatch's switch
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise ConfigError(f"there is no {label} block named {name!r}", field=field, hint=BLOCK_HINT) from None
    if not isinstance(loaded, kind):  # pragma: no cover - only when called from a coroutine
        raise TypeError(f"{label}.load returned {type(loaded).__name__}")
    return loaded


def provider_from_blocks(provider: str, settings: Mapping[str, Any], *, pool: str = "",
                         pool_size: int | None = None) -> Provider:
    """The provider a suite's ``environments.<pool>`` asks for, built from the blocks its settings name.

    ``settings`` is ``environments.<pool>.settings``; ``pool`` only names it in errors, and
    ``pool_size`` (the suite's) is checked against an EnvironmentPool block's ``size``.
    """
    field = f"environments.{pool}.settings" if pool else "settings"
    settings = dict(settings)
    if "pool" in settings:
        block = load_block(EnvironmentPool, settings.pop("pool"), field=f"{field}.pool")
        where = f"EnvironmentPool {_name(block)}"
        if block.provider != provider:
            raise ConfigError(f"pool block {_name(block)!r} is for {block.provider}, but the suite says {provider}",
                              field=f"{field}.pool", hint="name a pool block of the same provider")
        if pool_size is not None and pool_size > block.size:
            raise ConfigError(f"pool_size {pool_size} exceeds the {block.size} environments of {where}",
                              field=f"environments.{pool}.pool_size" if pool else "pool_size",
                              hint=f"lower pool_size or raise size on {where}")
        key = {"proxmox": "cluster", "hetzner": "project", "ssh": "machines"}.get(provider)
        if key is not None:
            if key in settings:
                raise ConfigError(f"{key!r} comes from the pool block {_name(block)!r}", field=f"{field}.{key}",
                                  hint="give either a pool block or the block names, not both")
            settings[key] = block.target
        return _build(provider, {**block.spec, **settings}, field=field, spec_field=f"{where}.spec")
    return _build(provider, settings, field=field, spec_field=field)


SSH_OPTIONS = ("connect_timeout", "reset_timeout", "reboot_timeout", "poll_interval")


def _build(provider: str, settings: dict[str, Any], *, field: str, spec_field: str) -> Provider:
    if provider == "proxmox":
        cluster = load_block(ProxmoxCluster, settings.pop("cluster", None), field=f"{field}.cluster")
        return ProxmoxProvider(cluster.settings(settings, field=spec_field))
    if provider == "hetzner":
        project = load_block(HetznerProject, settings.pop("project", None), field=f"{field}.project")
        return HetznerProvider(project.settings(settings, field=spec_field))
    if provider == "ssh":
        names = settings.pop("machines", None)
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            raise ConfigError("an ssh pool needs the names of its SSHMachine blocks", field=f"{field}.machines",
                              hint=BLOCK_HINT)
        options = _options(settings, SSH_OPTIONS, field=spec_field)
        machines = [load_block(SSHMachine, name, field=f"{field}.machines[{i}]").machine(str(name))
                    for i, name in enumerate(names)]
        return SSHMachineProvider(machines, on_new_host_key=record_host_key,
                                  connect_timeout=options.get("connect_timeout", 10.0),
                                  reset_timeout=options.get("reset_timeout", 900.0),
                                  reboot_timeout=options.get("reboot_timeout", 300.0),
                                  poll_interval=options.get("poll_interval", 2.0))
    if provider == "local":
        from testpilot.environments.local import LocalProvider
        from testpilot.settings import get_settings

        _options(settings, (), field=spec_field)
        home = get_settings()
        return LocalProvider(home.home, postgres_url=home.postgres_url, mysql_url=home.mysql_url)
    raise ConfigError(f"unknown provider {provider!r}", field=field.rsplit(".", 1)[0] + ".provider",
                      hint="use local, ssh, proxmox or hetzner")


def _options(settings: Mapping[str, Any], allowed: tuple[str, ...], *, field: str) -> dict[str, float]:
    out = {}
    for key, value in settings.items():
        if key not in allowed:
            raise ConfigError(f"unknown setting {key!r}", field=f"{field}.{key}",
                              hint=f"known settings: {', '.join(allowed) or 'none'}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key} must be a positive number of seconds", field=f"{field}.{key}")
        out[key] = float(value)
    return out


def record_host_key(machine: str, key: str) -> None:
    """SSHMachineProvider's on_new_host_key: pin a key learned on first use in the machine's block."""
    try:
        block = load_block(SSHMachine, machine, field="machines")
        if block.host_key:
            return  # pinned meanwhile (by a person or another run): the pinned one stays
        block.host_key = key
        block.save(machine, overwrite=True, _sync=True)  # type: ignore[call-arg]
        log.warning("SSH machine %s: pinned the host key seen on first use (%s) in its block",
                    machine, key.split()[0])
    except Exception as exc:  # noqa: BLE001 - the connection already checked the key; recording is best effort
        log.warning("SSH machine %s: could not record its host key in the block: %s", machine, type(exc).__name__)


# -- the reaper's view --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReapTarget:
    """One cloud account to sweep: a ProxmoxCluster or HetznerProject block, and the pools that use it."""

    provider: Literal["proxmox", "hetzner"]
    block: str
    pools: tuple[str, ...] = ()


KINDS: dict[str, type[Block]] = {"proxmox": ProxmoxCluster, "hetzner": HetznerProject}


def reap_targets() -> list[ReapTarget]:
    """Every ProxmoxCluster/HetznerProject block, plus blocks cloud pools name (missing ones included)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    found: dict[tuple[str, str], list[str]] = {}
    with get_client(sync_client=True) as client:

        def documents(kind: type[Block]) -> list[Any]:
            try:
                return list(client.read_block_documents_by_type(kind.get_block_type_slug(), include_secrets=False))
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:
                if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                    raise
                return []  # the block type was never registered on this server: no such blocks

        for provider, kind in KINDS.items():
            for doc in documents(kind):
                if doc.name and not doc.is_anonymous:
                    found.setdefault((provider, doc.name), [])
        pools = documents(EnvironmentPool)
    for doc in pools:
        wanted, target = doc.data.get("provider"), doc.data.get("target")
        if isinstance(wanted, str) and wanted in KINDS and isinstance(target, str) and target and doc.name:
            found.setdefault((wanted, target), []).append(doc.name)
    return [ReapTarget(provider, block, tuple(sorted(users)))  # type: ignore[arg-type]
            for (provider, block), users in sorted(found.items())]


def reaping_provider(target: ReapTarget) -> ProxmoxProvider | HetznerProvider:
    """A provider that can list and destroy what Testpilot owns in the target's account."""
    field = f"EnvironmentPool {target.pools[0]}.target" if target.pools else "block"
    if target.provider == "proxmox":
        cluster = load_block(ProxmoxCluster, target.block, field=field)
        return ProxmoxProvider(cluster.settings({"template_vmid": 0}))  # listing never touches the template
    project = load_block(HetznerProject, target.block, field=field)
    return HetznerProvider(project.reaping_settings())
