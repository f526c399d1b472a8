"""SSH machines: existing hosts behind the Provider protocol.

A pool of SSH machines is a fixed list of hosts; slot ``n`` is machine ``n``. ``acquire`` resets
the host (with the machine's optional reset command, such as a snapshot rollback), checks its
health, makes a run workdir and copies the apps into it. ``release`` removes that workdir.
Existing machines are never deleted, so ``destroy`` is ``release``.

Secrets (password, private key) arrive as plain values from the caller (a Block holding them as
``SecretStr``); they are excluded from ``repr`` and never logged or put in errors.
"""

from __future__ import annotations

import logging
import posixpath
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from testpilot.environments.base import AcquireRequest, Environment, Health, SSHAccess
from testpilot.errors import ConfigError, Diagnostics, InfrastructureError, ProvisioningError, TestpilotError
from testpilot.execution.remote import OnLine, RemoteHost

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SSHMachine(BaseModel):
    """One registered host. ``reset_command`` is an argv list (a string is split with shlex)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Short unique name, used in environment ids and logs.")
    host: str = Field(description="Address or DNS name.")
    port: int = Field(default=22, ge=1, le=65535)
    user: str = "root"
    host_key: str = Field(default="", description="Pinned public host key, 'ssh-ed25519 AAAA...' (ssh-keyscan).")
    os: str = Field(default="linux", description="Operating system, for reports and routing.")
    password: str | None = Field(default=None, repr=False)
    private_key: str | None = Field(default=None, repr=False, description="Private key text (OpenSSH/PEM).")
    passphrase: str | None = Field(default=None, repr=False)
    key_file: str | None = Field(default=None, description="Private key path on the worker, instead of the text.")
    trust_on_first_use: bool = Field(default=False, description="Accept and record an unpinned key once.")
    reset_command: tuple[str, ...] = Field(default=(), description="Run before each hand-out, e.g. a rollback.")
    reset_reboots: bool = Field(default=False, description="The reset command reboots the host (a drop is expected).")
    boot_id_command: tuple[str, ...] = Field(default=("cat", "/proc/sys/kernel/random/boot_id"),
                                             description="Prints an id that changes on every boot.")
    workdir: str = Field(default="testpilot-runs", description="Base folder for run workdirs (relative: home).")
    credentials_block: str | None = Field(default=None, description="Block holding the secret, for SSHAccess.")

    @field_validator("reset_command", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return tuple(shlex.split(value)) if isinstance(value, str) else value

    @field_validator("workdir")
    @classmethod
    def _sane_workdir(cls, value: str) -> str:
        if posixpath.normpath(value) in ("/", ".", "") or ".." in value.split("/"):
            raise ValueError("workdir must be a dedicated folder, not / or the home itself")
        return value.rstrip("/")

    def access(self) -> SSHAccess:
        return SSHAccess(host=self.host, port=self.port, user=self.user, host_key=self.host_key,
                         key_file=self.key_file, credentials_block=self.credentials_block)

    def remote(self, **options: Any) -> RemoteHost:
        """A RemoteHost for this machine; ``options`` (say ``host_key``, timeouts) override."""
        params: dict[str, Any] = {"host_key": self.host_key, "trust_on_first_use": self.trust_on_first_use}
        params.update(options)
        return RemoteHost(self.host, self.port, self.user, password=self.password, private_key=self.private_key,
                          key_file=self.key_file, passphrase=self.passphrase, **params)


def machine_from_settings(settings: Mapping[str, Any], *, file: str = "", field: str = "settings") -> SSHMachine:
    """Validate one machine from plain settings; the error names the field (never a secret's value)."""
    try:
        return SSHMachine.model_validate(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"SSH machine setting {where}: {first['msg']}", file=file, field=f"{field}.{where}",
                          hint="see docs/ssh.md for the fields of an SSH machine") from None


class SSHMachineProvider:
    """Provider for existing SSH hosts; slot ``n`` of the pool is ``machines[n]``."""

    name = "ssh"

    def __init__(self, machines: Sequence[SSHMachine], *, connect_timeout: float = 10.0,
                 reset_timeout: float = 900.0, reboot_timeout: float = 300.0, poll_interval: float = 2.0,
                 stage_apps: bool = True, on_line: OnLine | None = None,
                 on_new_host_key: Callable[[str, str], None] | None = None,
                 remote_options: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not machines:
            raise ConfigError("an SSH pool needs at least one machine", field="settings.machines",
                              hint="register SSH machines and list them in the pool")
        names = [m.name for m in machines]
        if len(set(names)) != len(names):
            raise ConfigError(f"SSH machine names repeat: {names}", field="settings.machines",
                              hint="give every machine a unique name")
        self.machines = list(machines)
        self.connect_timeout, self.reset_timeout = connect_timeout, reset_timeout
        self.reboot_timeout, self.poll_interval = reboot_timeout, poll_interval
        self.stage_apps = stage_apps
        self.on_line, self.on_new_host_key = on_line, on_new_host_key
        self.remote_options = dict(remote_options or {})
        self._clock, self._sleep = clock, sleep
        self._learned_keys: dict[str, str] = {}

    # ------------------------------------------------------------------ Provider protocol
    def acquire(self, request: AcquireRequest) -> Environment:
        machine = self._machine_for_slot(request.slot, request.pool)
        self.reset(machine)
        health = self._health(machine)
        if not health.ok:
            raise ProvisioningError(f"SSH machine {machine.name} ({machine.host}) is not healthy: {health.detail}",
                                    host=machine.host, phase="provision", dirty=True,
                                    hint="check the host, or take it out of the pool")
        workdir = posixpath.join(machine.workdir, f"{safe_name(request.run_id)}-{request.slot}")
        apps: dict[str, str] = {}
        with self.remote(machine) as remote:
            created = remote.run(["mkdir", "-p", "--", workdir], phase="provision", timeout=self.connect_timeout * 3)
            if created.exit_code != 0:
                raise ProvisioningError(f"cannot create {workdir} on {machine.host}: {created.tail}",
                                        host=machine.host, phase="provision",
                                        hint=f"check that {machine.user} may write {machine.workdir}")
            try:
                for app, source in request.apps.items() if self.stage_apps else ():
                    target = posixpath.join(workdir, "apps", safe_name(app))
                    remote.upload_dir(source, target)
                    apps[app] = target
            except TestpilotError:
                remote.run(["rm", "-rf", "--", workdir], phase="provision")  # half-staged: leave nothing
                raise
        access = machine.access()
        if machine.name in self._learned_keys:
            access = access.model_copy(update={"host_key": self._learned_keys[machine.name]})
        return Environment(
            id=f"{request.pool}-{request.slot}", pool=request.pool, provider=self.name, slot=request.slot,
            transport="ssh", workdir=workdir, ssh=access, env={"TESTPILOT_WORKDIR": workdir},
            labels={"testpilot-run": request.run_id, "testpilot-pool": request.pool},
            metadata={"machine": machine.name, "os": machine.os, "apps": apps, "base_workdir": machine.workdir})

    def release(self, env: Environment) -> None:
        machine = self.machine_for(env)
        workdir = env.workdir
        if not _inside(workdir, machine.workdir):
            raise ConfigError(f"refusing to remove {workdir!r} on {machine.host}: not under {machine.workdir!r}",
                              field="workdir", hint="release only environments this provider acquired")
        with self.remote(machine) as remote:
            removed = remote.run(["rm", "-rf", "--", workdir], phase="teardown", timeout=self.reset_timeout)
        if removed.exit_code != 0:
            raise InfrastructureError(f"cannot remove {workdir} on {machine.host}: {removed.tail}",
                                      host=machine.host, phase="teardown", dirty=True,
                                      hint="remove it by hand or let the reset command clean the host")

    def destroy(self, env: Environment) -> None:
        """Existing machines are not ours to delete: this only releases."""
        self.release(env)

    def health(self, env: Environment) -> Health:
        return self._health(self.machine_for(env))

    # ------------------------------------------------------------------ helpers
    def machine_for(self, env: Environment) -> SSHMachine:
        name = env.metadata.get("machine")
        for machine in self.machines:
            if machine.name == name:
                return machine
        return self._machine_for_slot(env.slot, env.pool)

    def remote(self, machine_or_env: SSHMachine | Environment) -> RemoteHost:
        """A RemoteHost for a machine or an acquired environment (key learned on first use included)."""
        machine = machine_or_env if isinstance(machine_or_env, SSHMachine) else self.machine_for(machine_or_env)
        learned = self._learned_keys.get(machine.name)
        options: dict[str, Any] = {"connect_timeout": self.connect_timeout, **self.remote_options}
        if learned:
            options["host_key"] = learned
        options["on_new_host_key"] = lambda key: self._learn(machine, key)
        return machine.remote(**options)

    def reset(self, machine: SSHMachine) -> None:
        """Run the reset command (if any); wait for the host to come back when it reboots."""
        if not machine.reset_command:
            return
        log.info("resetting SSH machine %s with %s", machine.name, machine.reset_command[0])
        boot_id = self._boot_id(machine) if machine.reset_reboots else ""
        try:
            with self.remote(machine) as remote:
                result = remote.run(machine.reset_command, on_line=self.on_line, timeout=self.reset_timeout,
                                    phase="reset", reconnect=not machine.reset_reboots)
        except InfrastructureError as exc:
            if not machine.reset_reboots or exc.phase == "connect":
                raise ProvisioningError(f"reset of {machine.name} ({machine.host}) failed: {exc.message}",
                                        host=machine.host, phase="reset", dirty=True, hint=exc.hint) from exc
            self._wait_until_back(machine, boot_id)  # the reboot cut the session, as expected
            return
        if result.timed_out or result.exit_code != 0:
            why = "timed out" if result.timed_out else f"exited with {result.exit_code}"
            raise ProvisioningError(f"reset command on {machine.name} ({machine.host}) {why}: {result.tail[-500:]}",
                                    host=machine.host, phase="reset", dirty=True,
                                    hint="run the reset command by hand on the host to see why")
        if machine.reset_reboots:
            self._wait_until_back(machine, boot_id)

    def _wait_until_back(self, machine: SSHMachine, old_boot_id: str) -> None:
        """Wait until the host answers with a new boot id (answering alone may precede the reboot)."""
        diagnostics = Diagnostics()
        started = self._clock()
        while True:
            health = self._health(machine)
            if health.ok:
                boot_id = self._boot_id(machine)
                if not old_boot_id or (boot_id and boot_id != old_boot_id):
                    return
                health = Health(ok=False, detail="answers, but has not rebooted yet")
            diagnostics.add(health.detail)
            diagnostics.waited_seconds = self._clock() - started
            if diagnostics.waited_seconds >= self.reboot_timeout:
                raise ProvisioningError(f"{machine.name} ({machine.host}) did not come back after its reset, "
                                        f"{diagnostics.summary()}", host=machine.host, phase="reset", dirty=True,
                                        hint="check the host's console; raise reboot_timeout if it is slow")
            self._sleep(self.poll_interval)

    def _boot_id(self, machine: SSHMachine) -> str:
        try:
            with self.remote(machine) as remote:
                result = remote.run(machine.boot_id_command, phase="reset", timeout=self.connect_timeout)
        except TestpilotError:
            return ""
        return result.tail.strip() if result.exit_code == 0 else ""

    def _health(self, machine: SSHMachine) -> Health:
        try:
            with self.remote(machine) as remote:
                result = remote.run(["true"], phase="health", timeout=self.connect_timeout)
        except TestpilotError as exc:
            return Health(ok=False, detail=str(exc))
        if result.exit_code != 0:
            return Health(ok=False, detail=f"'true' exited with {result.exit_code} on {machine.host}")
        return Health(ok=True, detail=f"{machine.user}@{machine.host}:{machine.port} answers")

    def _machine_for_slot(self, slot: int, pool: str) -> SSHMachine:
        if not 0 <= slot < len(self.machines):
            raise ConfigError(f"pool {pool!r} has {len(self.machines)} SSH machines, so no slot {slot}",
                              field="pool_size", hint="make pool_size at most the number of machines")
        return self.machines[slot]

    def _learn(self, machine: SSHMachine, key: str) -> None:
        self._learned_keys[machine.name] = key
        if self.on_new_host_key is not None:
            self.on_new_host_key(machine.name, key)


def safe_name(text: str) -> str:
    """A path component made of ``[A-Za-z0-9._-]`` only, from a run id, an app or an environment name."""
    return _UNSAFE.sub("_", text).strip("._-")[:80] or "run"


def _inside(path: str, base: str) -> bool:
    normal, root = posixpath.normpath(path), posixpath.normpath(base)
    return normal != root and normal.startswith(root + "/")
