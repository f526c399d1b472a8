"""Hetzner Cloud provider: servers from an image or snapshot, reset by rebuild or by a btrfs rollback script.

Each server gets labels with its pool, slot, owning run and expiry. Its SSH host key is generated
here and handed to cloud-init, so it is pinned from the first connection (and kept, hex-split, in
two labels so a later run can pin it too). hcloud's own retry is switched off: 423, 429 and
``conflict`` are retried here with an injectable sleep, and a 429 waits until ``RateLimit-Reset``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from testpilot.environments import hostkeys
from testpilot.environments.base import AcquireRequest, Environment, Health, SSHAccess
from testpilot.environments.cloud import (
    IDLE,
    Backoff,
    Clock,
    Ownership,
    Sleep,
    poll,
    safe_token,
    tcp_reachable,
)
from testpilot.environments.reaper import OwnedResource
from testpilot.errors import InfrastructureError, ProvisioningError

RETRYABLE = {"locked", "rate_limit_exceeded", "conflict", "timeout", "unavailable"}
DEFAULT_BASELINE_SCRIPT = ("sudo btrfs subvolume snapshot -r / /.snapshots/baseline/@ && "
                           "sudo btrfs subvolume snapshot -r /home /.snapshots/baseline/@home")
DEFAULT_RESET_SCRIPT = "sudo /usr/local/sbin/testpilot-btrfs-rollback /.snapshots/baseline"


class HetznerSettings(BaseModel):
    token: SecretStr = Field(description="Project API token with Read & Write permission.")
    api_endpoint: str = "https://api.hetzner.cloud/v1"
    server_type: str = "cx22"
    location: str | None = "fsn1"
    image: str = Field("debian-12", description="Image name or ID (system image or your prepared snapshot).")
    ssh_public_key: str = Field(description="Public key injected into servers; uploaded once as ssh_key_name.")
    ssh_key_name: str = "testpilot"
    ssh_key_file: str | None = Field(None, description="Private key on the worker for SSHAccess.key_file.")
    ssh_user: str = Field("root", description="Login user; a non-root user is created by cloud-init.")
    ssh_port: int = 22
    name_prefix: str = "tp"
    reset: Literal["rebuild", "script"] = Field("rebuild", description="rebuild from the baseline snapshot, "
                                                "or run reset_script over SSH and reboot (btrfs, seed 002).")
    baseline_script: str = DEFAULT_BASELINE_SCRIPT
    reset_script: str = DEFAULT_RESET_SCRIPT
    idle_expiry_seconds: float = 7 * 86400
    action_timeout: float = 900
    ssh_timeout: float = 300
    max_retries: int = Field(8, description="Retries of one call on 423/429/conflict before giving up.")


def _labels(owner: Ownership) -> dict[str, str]:
    return {"tp-pool": safe_token(owner.pool), "tp-slot": str(owner.slot), "tp-run": safe_token(owner.run_id),
            "tp-expires": str(owner.expires_at)}


RunScript = Callable[[SSHAccess, str], None]


class HetznerProvider:
    """Provider for one Hetzner Cloud project. ``client`` is an ``hcloud.Client`` (made from settings if None).

    ``run_script(ssh, command)`` runs a command on a server (used by reset='script'); it must raise
    on a non-zero exit.
    """

    name = "hetzner"

    def __init__(self, settings: HetznerSettings, *, client: Any = None, run_script: RunScript | None = None,
                 backoff: Backoff | None = None, sleep: Sleep = time.sleep, clock: Clock = time.monotonic,
                 wall_clock: Clock = time.time) -> None:
        self.settings = settings
        self.backoff = backoff or Backoff()
        self.sleep, self.clock, self.wall_clock = sleep, clock, wall_clock
        self.run_script = run_script or hostkeys.run_over_ssh
        self._last_headers: dict[str, str] = {}
        self.client = client or self._make_client()
        self._tune(self.client)

    def _make_client(self) -> Any:
        from hcloud import Client
        return Client(self.settings.token.get_secret_value(), api_endpoint=self.settings.api_endpoint,
                      poll_interval=self.backoff.initial, timeout=30)

    def _tune(self, client: Any) -> None:
        # hcloud retries 429/conflict itself with up to 60 s of jittered backoff and drops the
        # RateLimit-* headers; we take that over so waits honour RateLimit-Reset and can be injected.
        inner = getattr(client, "_client", None)
        if inner is not None and hasattr(inner, "_retry_max_retries"):
            inner._retry_max_retries = 0
            inner._session.hooks["response"].append(self._remember_headers)

    def _remember_headers(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._last_headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("ratelimit")}

    def call(self, fn: Callable[[], Any], what: str, phase: str = "provision") -> Any:
        """One API call with 423/429/conflict retries; other API errors become ProvisioningError."""
        from hcloud import APIException
        from requests import RequestException
        delays = self.backoff.delays()
        for attempt in range(self.settings.max_retries + 1):
            try:
                return fn()
            except APIException as exc:
                if exc.code not in RETRYABLE or attempt == self.settings.max_retries:
                    raise ProvisioningError(
                        f"Hetzner API refused to {what}: {exc.message} ({exc.code})", host="api.hetzner.cloud",
                        phase=phase, code=exc.code, api_details=exc.details,
                        hint="rate limited: lower the pool size or wait" if exc.code == "rate_limit_exceeded"
                        else "see the message; 'locked' means an action kept running") from exc
                self.sleep(self._retry_delay(str(exc.code), next(delays)))
            except RequestException as exc:
                raise InfrastructureError(f"cannot reach the Hetzner API to {what}: {exc}", phase=phase,
                                          host=self.settings.api_endpoint) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, code: str, fallback: float) -> float:
        reset = self._last_headers.get("ratelimit-reset", "")
        if code == "rate_limit_exceeded" and reset.isdigit():
            return min(60.0, max(0.0, int(reset) - self.wall_clock()))
        return fallback

    def wait_action(self, action: Any, what: str, phase: str = "provision") -> None:
        """Poll an action until it is no longer running; an error status raises ProvisioningError."""
        def check(seen: Any) -> Any:
            current = self.call(lambda: self.client.actions.get_by_id(action.id), f"read action {action.id}", phase)
            seen.add(f"{current.command} {current.status} {current.progress}%")
            return current if current.status != "running" else None

        done = poll(check, what=what, timeout=self.settings.action_timeout, backoff=self.backoff, sleep=self.sleep,
                    clock=self.clock, host="api.hetzner.cloud", phase=phase)
        if done.status == "error":
            error = done.error or {}
            raise ProvisioningError(f"Hetzner action {done.command} failed: {error.get('message')} "
                                    f"({error.get('code')})", host="api.hetzner.cloud", phase=phase,
                                    code=error.get("code"), action=done.command, hint="retry; see the server's actions")

    # -- Provider ---------------------------------------------------------------------------------
    def acquire(self, request: AcquireRequest) -> Environment:
        owner = Ownership(request.pool, request.slot, request.run_id, int(self.wall_clock() + request.expires_in))
        server = self._find(request.pool, request.slot)
        if server is None:
            return self._provision(owner)
        labels = {**server.labels, **_labels(owner)}
        self.call(lambda: self.client.servers.update(server, labels=labels), f"label server {server.name}")
        return self.reset(server.id, owner)

    def _find(self, pool: str, slot: int) -> Any:
        selector = f"tp-pool={safe_token(pool)},tp-slot={slot}"
        found = self.call(lambda: self.client.servers.get_all(label_selector=selector), "list servers")
        return next((s for s in found if s.status != "deleting"), None)

    def _ssh_key(self) -> Any:
        from hcloud import APIException
        s = self.settings
        try:
            return self.call(lambda: self.client.ssh_keys.create(name=s.ssh_key_name, public_key=s.ssh_public_key),
                             "upload the SSH key")
        except ProvisioningError as exc:
            if exc.details.get("code") != "uniqueness_error" or not isinstance(exc.__cause__, APIException):
                raise
        # 409: the key (or its name) is there already; use it if it is the same key.
        for key in self.call(lambda: self.client.ssh_keys.get_all(), "list SSH keys"):
            if key.name == s.ssh_key_name or key.public_key.split()[:2] == s.ssh_public_key.split()[:2]:
                if key.public_key.split()[:2] != s.ssh_public_key.split()[:2]:
                    raise ProvisioningError(f"SSH key name {s.ssh_key_name!r} holds a different key",
                                            phase="provision", hint="rename ssh_key_name or delete the old key")
                return key
        raise ProvisioningError("SSH key reported as duplicate but not found", phase="provision")

    def _provision(self, owner: Ownership) -> Environment:
        from hcloud.images import Image
        from hcloud.locations import Location
        from hcloud.server_types import ServerType
        s = self.settings
        key = self._ssh_key()
        host_private, host_public = hostkeys.new_host_key()
        name = f"{s.name_prefix}-{safe_token(owner.pool)}-{owner.slot}"
        labels = {**_labels(owner), **hostkeys.key_labels(host_public)}
        image = Image(id=int(s.image)) if s.image.isdigit() else Image(name=s.image)
        with contextlib.ExitStack() as undo:
            created = self.call(lambda: self.client.servers.create(
                name=name, server_type=ServerType(name=s.server_type), image=image, ssh_keys=[key], labels=labels,
                location=Location(name=s.location) if s.location else None,
                user_data=hostkeys.cloud_config(host_private, host_public, s.ssh_user)), f"create server {name}")
            undo.callback(self._delete_quietly, created.server.id)
            for action in [created.action, *created.next_actions]:
                self.wait_action(action, f"{action.command} of {name}")
            server = self.call(lambda: self.client.servers.get_by_id(created.server.id), f"read server {name}")
            access = self._access(server.public_net.ipv4.ip, host_public)
            self._wait_ssh(access)
            if s.reset == "rebuild":
                made = self.call(lambda: server.create_image(description=f"testpilot baseline of {name}",
                                                             labels={"tp-baseline-of": str(server.id)}),
                                 f"snapshot {name}")
                self.wait_action(made.action, f"baseline snapshot of {name}")
                labels = {**labels, "tp-baseline": str(made.image.id)}
                self.call(lambda: self.client.servers.update(server, labels=labels), f"label server {name}")
            else:
                self.run_script(access, s.baseline_script)
                self._reboot(server, name)
            undo.pop_all()
        return self._environment(server.id, name, access, owner)

    def reset(self, server_id: int, owner: Ownership) -> Environment:
        """Back to baseline: rebuild from the baseline snapshot (new host key), or rollback script + reboot."""
        from hcloud.images import Image
        server = self.call(lambda: self.client.servers.get_by_id(server_id), f"read server {server_id}", "reset")
        if self.settings.reset == "script":
            access = self._access(server.public_net.ipv4.ip, hostkeys.key_from_labels(server.labels))
            self.run_script(access, self.settings.reset_script)
            self._reboot(server, server.name)
            self._wait_ssh(access)
            return self._environment(server.id, server.name, access, owner)
        baseline = server.labels.get("tp-baseline", "")
        if not baseline.isdigit():
            raise ProvisioningError(f"server {server.name} has no tp-baseline label", phase="reset",
                                    hint="destroy it; the next acquire makes a new one")
        host_private, host_public = hostkeys.new_host_key()
        rebuilt = self.call(lambda: server.rebuild(Image(id=int(baseline)), user_data=hostkeys.cloud_config(
            host_private, host_public, self.settings.ssh_user)), f"rebuild {server.name}", "reset")
        self.wait_action(rebuilt.action, f"rebuild of {server.name}", "reset")
        labels = {**server.labels, **hostkeys.key_labels(host_public)}
        self.call(lambda: self.client.servers.update(server, labels=labels), f"label server {server.name}", "reset")
        access = self._access(server.public_net.ipv4.ip, host_public)
        self._wait_ssh(access)
        return self._environment(server.id, server.name, access, owner)

    def _reboot(self, server: Any, name: str) -> None:
        self.wait_action(self.call(lambda: server.reboot(), f"reboot {name}", "reset"), f"reboot of {name}", "reset")

    def _access(self, ip: str, host_public: str) -> SSHAccess:
        s = self.settings
        return SSHAccess(host=ip, port=s.ssh_port, user=s.ssh_user, host_key=host_public, key_file=s.ssh_key_file,
                         credentials_block=None)

    def _wait_ssh(self, access: SSHAccess) -> None:
        poll(lambda seen: True if tcp_reachable(access.host, access.port) else seen.add("port closed"),
             what=f"SSH on {access.host}:{access.port}", timeout=self.settings.ssh_timeout, backoff=self.backoff,
             sleep=self.sleep, clock=self.clock, host=access.host)

    def _environment(self, server_id: int, name: str, access: SSHAccess, owner: Ownership) -> Environment:
        return Environment(id=f"hetzner-{server_id}", pool=owner.pool, provider=self.name, slot=owner.slot,
                           transport="ssh", workdir="testpilot", ssh=access,  # relative: under the login home
                           labels={"pool": owner.pool, "run": owner.run_id, "expires": str(owner.expires_at)},
                           metadata={"server_id": server_id, "name": name})

    def release(self, env: Environment) -> None:
        server = self.call(lambda: self.client.servers.get_by_id(env.metadata["server_id"]), "read server", "release")
        idle = Ownership(env.pool, env.slot, IDLE, int(self.wall_clock() + self.settings.idle_expiry_seconds))
        if env.dirty:
            self.reset(server.id, idle)
        labels = {**server.labels, **_labels(idle)}
        self.call(lambda: self.client.servers.update(server, labels=labels), f"label server {server.name}", "release")

    def destroy(self, env: Environment) -> None:
        self.delete_server(int(env.metadata["server_id"]))

    def delete_server(self, server_id: int) -> None:
        """Delete a server and its baseline snapshot; one already gone is fine."""
        from hcloud import APIException
        try:
            server = self.client.servers.get_by_id(server_id)
        except APIException as exc:
            if exc.code == "not_found":
                return
            server = None
        if server is None:
            server = self.call(lambda: self.client.servers.get_by_id(server_id), "read server", "teardown")
        action = self.call(lambda: server.delete(), f"delete server {server_id}", "teardown")
        self.wait_action(action, f"deletion of server {server_id}", "teardown")
        for image in self.call(lambda: self.client.images.get_all(label_selector=f"tp-baseline-of={server_id}"),
                               "list snapshots", "teardown"):
            self.call(image.delete, f"delete snapshot {image.id}", "teardown")

    def _delete_quietly(self, server_id: int) -> None:
        # Clean-up after a failed provision must not replace the original error.
        with contextlib.suppress(Exception):
            self.delete_server(server_id)

    def health(self, env: Environment) -> Health:
        try:
            server = self.call(lambda: self.client.servers.get_by_id(env.metadata["server_id"]), "read", "health")
        except InfrastructureError as exc:
            return Health(ok=False, detail=str(exc))
        if server.status != "running":
            return Health(ok=False, detail=f"server {server.name} is {server.status}")
        if env.ssh and not tcp_reachable(env.ssh.host, env.ssh.port):
            return Health(ok=False, detail=f"SSH port {env.ssh.host}:{env.ssh.port} not reachable")
        return Health(ok=True, detail=f"server {server.name} running")

    # -- reaper -----------------------------------------------------------------------------------
    def list_owned(self) -> list[OwnedResource]:
        servers = self.call(lambda: self.client.servers.get_all(label_selector="tp-pool"), "list servers", "reap")
        return [OwnedResource(self.name, str(s.id), s.name, s.labels["tp-pool"], s.labels.get("tp-run", ""),
                              int(s.labels["tp-expires"]) if s.labels.get("tp-expires", "").isdigit() else None)
                for s in servers]

    def destroy_owned(self, resource: OwnedResource) -> None:
        self.delete_server(int(resource.id))
