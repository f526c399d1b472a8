"""Proxmox VE provider: pool members are clones of a template, reset by rolling back a baseline snapshot.

First acquire of a slot: clone (full or linked) onto a node, set cores/memory/cloud-init user and
SSH keys/tags, start, wait for the guest agent's IP, read the SSH host key through the agent (an
authenticated channel, so the key is pinned, never trusted on first use), snapshot the baseline.
Later acquires roll back to that snapshot, which takes seconds instead of a clone.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr

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
from testpilot.environments.reaper import UNTAGGED, OwnedResource
from testpilot.errors import ConfigError, InfrastructureError, ProvisioningError

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
NEXTID_ATTEMPTS = 8  # clones racing for /cluster/nextid: each loser asks again


WARM_PREFIX = "tp-warm-"  # + 16 hex digits: within Proxmox's 40-character snapshot names


class ProxmoxSettings(BaseModel):
    host: str = Field(description="API address, 'pve.example.com' or 'pve.example.com:8006'.")
    user: str = Field("root@pam", description="User for ticket auth, or the token's owner ('user@realm').")
    token_name: str | None = Field(None, description="API token id (the part after '!'); preferred over a password.")
    token_value: SecretStr | None = None
    password: SecretStr | None = None
    verify_ssl: bool = Field(True, description="Keep on; for a private CA set ca_bundle.")
    ca_bundle: str | None = Field(None, description="PEM file of the CA(s) to trust instead of the system store "
                                                    "(a private CA); ignored when verify_ssl is off.")
    template_vmid: int = Field(description="VM template to clone (cloud-init + qemu-guest-agent inside).")
    nodes: list[str] = Field(default_factory=list, description="Nodes to place clones on; empty = any online node.")
    full_clone: bool = Field(False, description="Full copy instead of a linked clone (needs no shared base disk).")
    cores: int = 2
    memory_mb: int = 2048
    ssh_user: str = Field("testpilot", description="cloud-init user created in the VM.")
    ssh_public_keys: list[str] = Field(default_factory=list, description="Keys cloud-init authorizes.")
    ssh_key_file: str | None = Field(None, description="Private key on the worker for SSHAccess.key_file.")
    ssh_port: int = 22
    name_prefix: str = "tp"
    baseline_snapshot: str = "tp-baseline"
    baseline_with_ram: bool = Field(True, description="Snapshot RAM too, so a rollback needs no reboot.")
    warm_snapshots: bool = Field(True, description="After the apps are installed on a member, snapshot it "
                                 f"('{WARM_PREFIX}<requirements hash>', one per VM) and reset to that snapshot "
                                 "while the requirements stay the same, so installs are skipped.")
    warm_max_age_hours: float = Field(24.0, gt=0, description="A warm snapshot older than this is not used: "
                                      "the member is installed afresh (unpinned requirements get new releases) "
                                      "and snapshotted again.")
    idle_expiry_seconds: float = Field(7 * 86400, description="How long a released VM may sit unused.")
    agent_timeout: float = 300
    task_timeout: float = 900


def _tags(owner: Ownership) -> str:
    return ";".join([f"tp-pool-{safe_token(owner.pool)}", f"tp-slot-{owner.slot}",
                     f"tp-run-{safe_token(owner.run_id)}", f"tp-exp-{owner.expires_at}"])


def parse_tags(tags: str) -> dict[str, str]:
    """Ownership from a VM's tags ('tp-pool-x;tp-run-y;...'), keyed pool/slot/run/exp."""
    out = {}
    for tag in tags.replace(",", ";").replace(" ", ";").split(";"):
        for key in ("pool", "slot", "run", "exp"):
            if tag.startswith(f"tp-{key}-"):
                out[key] = tag[len(f"tp-{key}-"):]
    return out


class ProxmoxProvider:
    """Provider for a Proxmox VE cluster. ``api`` is a proxmoxer ``ProxmoxAPI`` (made from settings if None)."""

    name = "proxmox"

    def __init__(self, settings: ProxmoxSettings, *, api: Any = None, backoff: Backoff | None = None,
                 sleep: Sleep = time.sleep, clock: Clock = time.monotonic,
                 wall_clock: Clock = time.time) -> None:
        self.settings = settings
        self._api = api
        self.backoff = backoff or Backoff()
        self.sleep, self.clock, self.wall_clock = sleep, clock, wall_clock

    # -- connection -------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._api is None:
            from proxmoxer import ProxmoxAPI
            s = self.settings
            # requests takes a CA bundle path where it takes True; proxmoxer passes verify_ssl through.
            verify: bool | str = (s.ca_bundle or True) if s.verify_ssl else False
            if s.token_name and s.token_value:
                self._api = ProxmoxAPI(s.host, user=s.user, token_name=s.token_name,
                                       token_value=s.token_value.get_secret_value(), verify_ssl=verify)
            elif s.password:
                self._api = self._call(lambda: ProxmoxAPI(s.host, user=s.user, password=s.password.get_secret_value(),
                                                          verify_ssl=verify), "log in")
            else:
                raise ConfigError("Proxmox needs an API token or a password", field="token_value",
                                  hint="set token_name and token_value (or password) on the ProxmoxCluster block")
        return self._api

    def _call(self, fn: Any, what: str, phase: str = "provision") -> Any:
        from proxmoxer import AuthenticationError, ResourceException
        from requests import RequestException
        try:
            return fn()
        except ResourceException as exc:
            raise ProvisioningError(f"Proxmox refused to {what}: {exc.status_code} {exc.content}"
                                    + (f" {exc.errors}" if exc.errors else ""), host=self.settings.host,
                                    phase=phase, status_code=exc.status_code, reason=exc.content,
                                    errors=exc.errors, hint="see the message; the API names the field or lock") from exc
        except AuthenticationError as exc:
            raise ConfigError(f"Proxmox login failed: {exc}", field="user",
                              hint="check the user, realm and password or token") from exc
        except RequestException as exc:
            raise InfrastructureError(f"cannot reach Proxmox at {self.settings.host} to {what}: {exc}",
                                      host=self.settings.host, phase=phase,
                                      hint="check the address, port 8006, and ca_bundle for a private CA") from exc

    def wait_task(self, upid: str, what: str, phase: str = "provision") -> None:
        """Poll a UPID until it stops; an exitstatus other than OK raises ProvisioningError(exitstatus=...)."""
        if not upid:
            return
        node = upid.split(":")[1]

        def check(seen: Any) -> dict[str, Any] | None:
            status = self._call(lambda: self.api.nodes(node).tasks(upid).status.get(), f"read task {upid}", phase)
            seen.add(f"task {status.get('type')} {status.get('status')}")
            return status if status.get("status") == "stopped" else None

        status = poll(check, what=f"task {what} ({upid})", timeout=self.settings.task_timeout,
                      backoff=self.backoff, sleep=self.sleep, clock=self.clock, host=self.settings.host, phase=phase)
        exit_status = str(status.get("exitstatus", ""))
        if exit_status != "OK" and not exit_status.startswith("WARNINGS"):
            raise ProvisioningError(f"Proxmox task {what} failed: {exit_status}", host=self.settings.host,
                                    phase=phase, exitstatus=exit_status, upid=upid,
                                    hint=f"see the task log: pvenode task log {upid}")

    # -- placement --------------------------------------------------------------------------------
    def _template_node(self) -> str:
        vms = self._call(lambda: self.api.cluster.resources.get(type="vm"), "list VMs")
        for vm in vms:
            if int(vm.get("vmid", 0)) == self.settings.template_vmid:
                return str(vm["node"])
        raise ConfigError(f"template VM {self.settings.template_vmid} not found in the cluster",
                          field="template_vmid", hint="convert a cloud-init VM to a template and name its VMID")

    def choose_node(self) -> str:
        """The online candidate node with the most free memory."""
        nodes = self._call(lambda: self.api.nodes.get(), "list nodes")
        candidates = [n for n in nodes if n.get("status") == "online"
                      and (not self.settings.nodes or n["node"] in self.settings.nodes)]
        if not candidates:
            raise InfrastructureError(f"no online Proxmox node among {self.settings.nodes or 'the cluster'}",
                                      host=self.settings.host, phase="provision", hint="check the cluster state")
        return str(max(candidates, key=lambda n: n.get("maxmem", 0) - n.get("mem", 0))["node"])

    def _find(self, pool: str, slot: int) -> dict[str, Any] | None:
        for vm in self._call(lambda: self.api.cluster.resources.get(type="vm"), "list VMs"):
            tags = parse_tags(vm.get("tags", ""))
            if not vm.get("template") and tags.get("pool") == safe_token(pool) and tags.get("slot") == str(slot):
                return vm
        return None

    # -- Provider ---------------------------------------------------------------------------------
    def acquire(self, request: AcquireRequest) -> Environment:
        owner = Ownership(request.pool, request.slot, request.run_id, int(self.wall_clock() + request.expires_in))
        existing = self._find(request.pool, request.slot)
        if existing is not None:
            node, vmid = str(existing["node"]), int(existing["vmid"])
            self._set_tags(node, vmid, owner)
            warm = self.reset(node, vmid, request.warm_key)
            self._set_tags(node, vmid, owner)  # a rollback restores the config the snapshot saw, tags included
        else:
            node, vmid = self._provision(owner)
            warm = ""
        env = self._environment(node, vmid, owner)
        env.metadata["warm_key"] = warm
        return env

    def _provision(self, owner: Ownership) -> tuple[str, int]:
        s = self.settings
        source_node = self._template_node()
        target = self.choose_node()
        with contextlib.ExitStack() as undo:
            vmid, upid = self._clone(source_node, target, f"{s.name_prefix}-{safe_token(owner.pool)}-{owner.slot}")
            undo.callback(self._destroy_quietly, target, vmid, upid)
            self.wait_task(upid, f"clone {s.template_vmid} -> {vmid}")
            keys = "\n".join(s.ssh_public_keys)
            self._call(lambda: self.api.nodes(target).qemu(vmid).config.post(
                cores=s.cores, memory=s.memory_mb, ciuser=s.ssh_user, sshkeys=quote(keys, safe=""),
                ipconfig0="ip=dhcp", agent="1", tags=_tags(owner)), f"configure VM {vmid}")
            self.wait_task(self._call(lambda: self.api.nodes(target).qemu(vmid).status.start.post(),
                                      f"start VM {vmid}"), f"start VM {vmid}")
            self.guest_ip(target, vmid)
            self.wait_task(self._call(lambda: self.api.nodes(target).qemu(vmid).snapshot.post(
                snapname=s.baseline_snapshot, vmstate=int(s.baseline_with_ram),
                description="Testpilot baseline"), f"snapshot VM {vmid}"), f"baseline snapshot of VM {vmid}")
            undo.pop_all()
        return target, vmid

    def _clone(self, source_node: str, target: str, name: str) -> tuple[int, str]:
        """Clone the template onto a free VMID; returns it and the clone's UPID. Clones started at once
        (several members of a pool, several runs) can be handed the same ``/cluster/nextid``: the one
        that loses is refused with 'already exists' and asks for a new id. The VM it lost to belongs to
        someone else and is left alone."""
        s = self.settings
        delays = self.backoff.delays()
        for attempt in range(1, NEXTID_ATTEMPTS + 1):
            vmid = int(self._call(lambda: self.api.cluster.nextid.get(), "get a free VMID"))
            clone: dict[str, Any] = {"newid": vmid, "name": name, "full": int(s.full_clone)}
            if target != source_node:
                clone["target"] = target
            try:
                return vmid, self._call(functools.partial(self.api.nodes(source_node).qemu(s.template_vmid).clone.post,
                                                          **clone), f"clone template {s.template_vmid} to VMID {vmid}")
            except ProvisioningError as exc:
                taken = "already exists" in f"{exc.details.get('reason', '')} {exc.details.get('errors', '')}"
                if not taken or attempt == NEXTID_ATTEMPTS:
                    raise
            self.sleep(next(delays))
        raise AssertionError("unreachable")

    def reset(self, node: str, vmid: int, warm_key: str = "") -> str:
        """Roll back to the warm snapshot of ``warm_key`` if the VM has one (returns the key), else to the
        baseline (returns ''); start the VM if the snapshot had no RAM state."""
        vm = self.api.nodes(node).qemu(vmid)
        warm = WARM_PREFIX + warm_key if warm_key and self.settings.warm_snapshots else ""
        if warm:
            taken = self._snapshots(node, vmid).get(warm)
            if taken is None or self.wall_clock() - taken > self.settings.warm_max_age_hours * 3600:
                warm = ""
        target = warm or self.settings.baseline_snapshot
        self.wait_task(self._call(lambda: vm.snapshot(target).rollback.post(),
                                  f"roll back VM {vmid}", "reset"), f"rollback of VM {vmid} to {target}", "reset")
        status = self._call(lambda: vm.status.current.get(), f"read VM {vmid} status", "reset")
        if status.get("status") != "running":
            self.wait_task(self._call(lambda: vm.status.start.post(), f"start VM {vmid}", "reset"),
                           f"start VM {vmid}", "reset")
        return warm_key if warm else ""

    def _snapshots(self, node: str, vmid: int) -> dict[str, float]:
        """The VM's snapshots and when each was taken (unix seconds)."""
        found = self._call(lambda: self.api.nodes(node).qemu(vmid).snapshot.get(), f"list snapshots of VM {vmid}",
                           "reset")
        return {str(s["name"]): float(s.get("snaptime") or 0) for s in found if s.get("name") != "current"}

    @property
    def keeps_warm_snapshots(self) -> bool:
        """Staging asks before it fingerprints the requirements (and byte-compiles the venvs to keep)."""
        return self.settings.warm_snapshots

    def save_warm(self, env: Environment, warm_key: str) -> str:
        """Snapshot a member whose apps were just installed as ``tp-warm-<warm_key>``, replacing its older
        warm snapshot (one per VM: each holds a copy of what changed since the baseline). Returns the
        snapshot's name, or '' when warm snapshots are off."""
        if not (warm_key and self.settings.warm_snapshots):
            return ""
        node, vmid = env.metadata["node"], int(env.metadata["vmid"])
        name = WARM_PREFIX + warm_key
        snapshots = self.api.nodes(node).qemu(vmid).snapshot
        for old in self._snapshots(node, vmid):
            if old.startswith(WARM_PREFIX):
                self.wait_task(self._call(lambda old=old: snapshots(old).delete(), f"delete snapshot {old} of VM {vmid}",
                                          "install"), f"deleting snapshot {old} of VM {vmid}", "install")
        self.wait_task(self._call(lambda: snapshots.post(
            snapname=name, vmstate=int(self.settings.baseline_with_ram),
            description=f"Testpilot: apps installed (requirements {warm_key})"), f"snapshot VM {vmid}", "install"),
            f"warm snapshot of VM {vmid}", "install")
        return name

    def guest_ip(self, node: str, vmid: int) -> str:
        """Wait for the guest agent to report an IPv4 address on a non-loopback interface."""
        from proxmoxer import ResourceException

        def check(seen: Any) -> str | None:
            try:
                answer = self.api.nodes(node).qemu(vmid).agent("network-get-interfaces").get()
            except ResourceException as exc:
                seen.add(f"agent: {exc.content}")
                return None
            for iface in answer.get("result", []):
                if iface.get("name") == "lo":
                    continue
                for addr in iface.get("ip-addresses", []):
                    if addr.get("ip-address-type") == "ipv4":
                        return str(addr["ip-address"])
            seen.add("agent up, no IPv4 yet")
            return None

        return poll(check, what=f"the guest agent's IP of VM {vmid}", timeout=self.settings.agent_timeout,
                    backoff=self.backoff, sleep=self.sleep, clock=self.clock, host=f"{node}/VM {vmid}",
                    hint="install and enable qemu-guest-agent in the template, and set agent=1")

    def _environment(self, node: str, vmid: int, owner: Ownership) -> Environment:
        s = self.settings
        ip = self.guest_ip(node, vmid)
        host_key = self._call(lambda: self.api.nodes(node).qemu(vmid).agent("file-read").get(file=HOST_KEY_FILE),
                              f"read the host key of VM {vmid}")["content"].strip()
        return Environment(
            id=f"proxmox-{vmid}", pool=owner.pool, provider=self.name, slot=owner.slot, transport="ssh",
            workdir="testpilot",  # relative: under the login user's home
            ssh=SSHAccess(host=ip, port=s.ssh_port, user=s.ssh_user, host_key=" ".join(host_key.split()[:2]),
                          key_file=s.ssh_key_file, credentials_block=None),
            labels={"pool": owner.pool, "run": owner.run_id, "expires": str(owner.expires_at)},
            metadata={"node": node, "vmid": vmid})

    def _set_tags(self, node: str, vmid: int, owner: Ownership) -> None:
        self._call(lambda: self.api.nodes(node).qemu(vmid).config.put(tags=_tags(owner)), f"tag VM {vmid}")

    def release(self, env: Environment) -> None:
        node, vmid = env.metadata["node"], int(env.metadata["vmid"])
        if env.dirty:
            self.reset(node, vmid)
        idle = Ownership(env.pool, env.slot, IDLE, int(self.wall_clock() + self.settings.idle_expiry_seconds))
        self._set_tags(node, vmid, idle)

    def destroy(self, env: Environment) -> None:
        self.destroy_vm(env.metadata["node"], int(env.metadata["vmid"]))

    def destroy_vm(self, node: str, vmid: int) -> None:
        """Stop and delete a VM with its disks; a VM that is already gone is fine."""
        vm = self.api.nodes(node).qemu(vmid)

        def unlocked(seen: Any) -> dict[str, Any] | None:
            status = self._status_or_none(node, vmid)
            if status is not None and status.get("lock"):
                seen.add(f"locked ({status['lock']})")  # e.g. a clone still finishing
                return None
            return status or {"status": "gone"}

        status = poll(unlocked, what=f"VM {vmid} to be unlocked", timeout=self.settings.task_timeout,
                      backoff=self.backoff, sleep=self.sleep, clock=self.clock, host=f"{node}/VM {vmid}",
                      phase="teardown")
        if status["status"] == "gone":
            return
        if status.get("status") == "running":
            self.wait_task(self._call(lambda: vm.status.stop.post(), f"stop VM {vmid}", "teardown"),
                           f"stop VM {vmid}", "teardown")
        self.wait_task(self._call(lambda: vm.delete(purge=1, **{"destroy-unreferenced-disks": 1}),
                                  f"destroy VM {vmid}", "teardown"), f"destroy VM {vmid}", "teardown")

    def _status_or_none(self, node: str, vmid: int) -> dict[str, Any] | None:
        try:
            return dict(self._call(lambda: self.api.nodes(node).qemu(vmid).status.current.get(),
                                   f"read VM {vmid} status", "teardown"))
        except ProvisioningError as exc:
            if "does not exist" in str(exc.details.get("reason", "")):
                return None
            raise

    def _destroy_quietly(self, node: str, vmid: int, clone_upid: str) -> None:
        # Clean-up after a failed provision must not hide the original error; it retries the lock wait.
        with contextlib.suppress(Exception):
            self.wait_task(clone_upid, "clone (before clean-up)", "teardown")
        with contextlib.suppress(Exception):
            self.destroy_vm(node, vmid)

    def health(self, env: Environment) -> Health:
        node, vmid = env.metadata["node"], int(env.metadata["vmid"])
        try:
            status = self._call(lambda: self.api.nodes(node).qemu(vmid).status.current.get(), "read status", "health")
        except InfrastructureError as exc:
            return Health(ok=False, detail=str(exc))
        if status.get("status") != "running":
            return Health(ok=False, detail=f"VM {vmid} is {status.get('status')}")
        if env.ssh and not tcp_reachable(env.ssh.host, env.ssh.port):
            return Health(ok=False, detail=f"SSH port {env.ssh.host}:{env.ssh.port} not reachable")
        return Health(ok=True, detail=f"VM {vmid} running on {node}")

    # -- reaper -----------------------------------------------------------------------------------
    def list_owned(self) -> list[OwnedResource]:
        out = []
        untagged = re.compile(rf"{re.escape(self.settings.name_prefix)}-(.+)-(\d+)\Z")
        for vm in self._call(lambda: self.api.cluster.resources.get(type="vm"), "list VMs", "reap"):
            tags = parse_tags(vm.get("tags", ""))
            named = untagged.match(str(vm.get("name", "")))
            if not vm.get("template") and "pool" not in tags and named:
                # Cloned, never tagged: its run was killed between the clone and the configure call. Its
                # "run" names the pool member, which the reaper removes only while nobody holds that member.
                out.append(OwnedResource(self.name, f"{vm['node']}/{vm['vmid']}", str(vm["name"]), named[1],
                                         f"{UNTAGGED}{named[1]}:{named[2]}", None))
                continue
            if vm.get("template") or "pool" not in tags:
                continue
            out.append(OwnedResource(self.name, f"{vm['node']}/{vm['vmid']}", str(vm.get("name", vm["vmid"])),
                                     tags["pool"], tags.get("run", ""),
                                     int(tags["exp"]) if tags.get("exp", "").isdigit() else None))
        return out

    def destroy_owned(self, resource: OwnedResource) -> None:
        node, vmid = resource.id.split("/")
        self.destroy_vm(node, int(vmid))
