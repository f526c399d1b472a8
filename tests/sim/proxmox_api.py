"""Endpoint handlers of the Proxmox simulator: access, nodes, qemu, snapshots, agent, cluster, tasks."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import unquote

from tests.sim.machines import Machine
from tests.sim.proxmox import HOST_KEY_FILE, VM, ProxmoxSim, PveError, api
from tests.sim.proxmox_schema import as_bool


@api("POST", "/access/ticket")
def ticket(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    user = p["username"] if "@" in p["username"] else f"{p['username']}@{p.get('realm', 'pam')}"
    if sim.users.get(user) != p["password"] or not p["password"]:
        raise PveError(401, "authentication failure")
    ticket_value = f"PVE:{user}:{int(time.time()):08X}::{secrets.token_urlsafe(32)}"
    csrf = f"{int(time.time()):08X}:{secrets.token_urlsafe(24)}"
    sim._tickets[ticket_value] = f"{user}\0{csrf}"
    return {"username": user, "ticket": ticket_value, "CSRFPreventionToken": csrf, "cap": {}}


@api("GET", "/nodes")
def nodes(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    out = []
    for node in sim.nodes:
        used = sum(_memory(vm) for vm in sim._vms.values() if vm.node == node and vm.status == "running")
        out.append({"node": node, "id": f"node/{node}", "type": "node", "status": "online", "cpu": 0.03,
                    "maxcpu": 16, "mem": (2 << 30) + used * (1 << 20), "maxmem": 64 << 30, "uptime": 86400,
                    "level": ""})
    return out


def _memory(vm: VM) -> int:
    value = vm.config.get("memory", "512")
    return int(value.split("=")[-1].split(",")[0]) if value else 512


def _summary(vm: VM) -> dict[str, Any]:
    info = {"vmid": vm.vmid, "name": vm.config.get("name", f"VM {vm.vmid}"), "status": vm.status,
            "cpus": int(vm.config.get("cores", "1")), "maxmem": _memory(vm) << 20,
            "maxdisk": 20 << 30, "uptime": int(time.monotonic() - vm.started) if vm.status == "running" else 0,
            "tags": vm.config.get("tags", "")}
    if vm.template:
        info["template"] = 1
    if vm.lock:
        info["lock"] = vm.lock
    return info


@api("GET", "/nodes/{node}/qemu")
def list_vms(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    node = sim._node(p)
    return [_summary(vm) for vm in sim._vms.values() if vm.node == node]


@api("POST", "/nodes/{node}/qemu")
def create_vm(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    node, vmid = sim._node(p), int(p["vmid"])
    if vmid in sim._vms:
        raise PveError(500, f"unable to create VM {vmid} - VM {vmid} already exists on node '{sim._vms[vmid].node}'")
    config = {k: v for k, v in p.items() if k not in ("node", "vmid", "start")}
    sim._vms[vmid] = VM(vmid, node, config)
    return sim._task(node, "qmcreate", vmid, user, sim.timings.qmcreate, lambda: None, lock="create")


@api("POST", "/nodes/{node}/qemu/{vmid}/clone")
def clone(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    source = sim._vm(p, unlocked=False)
    newid, target = int(p["newid"]), p.get("target", source.node)
    if sim.faults.clone_http_500 > 0:
        sim.faults.clone_http_500 -= 1
        raise PveError(500, f"clone failed: storage 'local-lvm' does not exist on node '{target}'")
    if sim.faults.clone_id_races > 0 and newid not in sim._vms:  # another client's clone got there first
        sim.faults.clone_id_races -= 1
        sim._vms[newid] = VM(newid, target, {"name": f"other-client-{newid}", "tags": "other-client"})
    if newid in sim._vms:
        raise PveError(500, f"unable to create VM {newid}: config file already exists")
    if target not in sim.nodes:
        raise PveError(500, f"no such cluster node '{target}'")
    full = as_bool(p.get("full")) if "full" in p else not source.template
    if not full and not source.template:
        raise PveError(500, "Linked clone feature is not supported for drive 'scsi0' (only possible for templates)")
    config = {k: v for k, v in source.config.items() if k != "template"}
    config["name"] = p.get("name", f"Copy-of-VM-{source.config.get('name', source.vmid)}")
    config["scsi0"] = (f"local-lvm:vm-{newid}-disk-0,size=20G" if full
                       else f"local-lvm:base-{source.vmid}-disk-0/vm-{newid}-disk-0,size=20G")
    image = source.machine.export("current") if source.machine is not None else source.image
    vm = VM(newid, target, config, image=image)
    sim._vms[newid] = vm

    def finish() -> str | None:
        if sim.faults.clone_task_error:
            with sim._lock:
                del sim._vms[newid]  # pve-manager removes the half-made VM when a clone fails
            return sim.faults.clone_task_error
        return None

    seconds = sim.timings.qmclone_full if full else sim.timings.qmclone_linked
    return sim._task(source.node, "qmclone", source.vmid, user, seconds, finish, lock="clone", lock_vm=vm)


@api("GET", "/nodes/{node}/qemu/{vmid}/config")
def get_config(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    vm = sim._vm(p, unlocked=False)
    out: dict[str, Any] = {k: (int(v) if k in ("cores", "template", "sockets") else v) for k, v in vm.config.items()}
    if vm.lock:
        out["lock"] = vm.lock
    out["digest"] = secrets.token_hex(20)
    return out


def _set_config(sim: ProxmoxSim, p: dict[str, str]) -> None:
    vm = sim._vm(p)
    for key in (p.get("delete") or "").replace(";", ",").split(","):
        vm.config.pop(key.strip(), None)
    for key, value in p.items():
        if key not in ("node", "vmid", "delete", "digest", "skiplock", "background_delay"):
            vm.config[key] = value
    if "tags" in p:
        sim.record_holder(vm.vmid, p["tags"])


@api("POST", "/nodes/{node}/qemu/{vmid}/config")
def post_config(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    _set_config(sim, p)
    return None


@api("PUT", "/nodes/{node}/qemu/{vmid}/config")
def put_config(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    _set_config(sim, p)
    return None


@api("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def current(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    vm = sim._vm(p, unlocked=False)
    info = _summary(vm)
    info.update({"qmpstatus": vm.status, "agent": 1 if as_bool(vm.config.get("agent", "0").split(",")[0].split("=")[-1]) else 0,
                 "ha": {"managed": 0}})
    return info


@api("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def start(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm = sim._vm(p)
    if vm.template:
        raise PveError(500, "you can't start a vm if it's a template")
    if vm.status == "running":
        raise PveError(500, f"VM {vm.vmid} already running")

    def boot() -> str | None:
        if sim.faults.start_task_error:
            return sim.faults.start_task_error
        if vm.machine is None:
            keys = [line for line in unquote(vm.config.get("sshkeys", "")).splitlines() if line.strip()]
            vm.machine = sim.machines.create(f"pve-{vm.vmid}", user=vm.config.get("ciuser", "debian"),
                                             authorized_keys=keys, image=vm.image)
        vm.machine.start()
        vm.status, vm.started = "running", time.monotonic()
        vm.agent_at = None if sim.faults.agent_never_up else sim.clock() + sim.timings.agent_boot
        return None

    return sim._task(vm.node, "qmstart", vm.vmid, user, sim.timings.qmstart, boot)


def _halt(vm: VM) -> None:
    if vm.machine is not None:
        vm.machine.stop()
    vm.status, vm.agent_at = "stopped", None


@api("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def stop(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm = sim._vm(p)

    def halt() -> str | None:
        _halt(vm)
        return None

    return sim._task(vm.node, "qmstop", vm.vmid, user, sim.timings.qmstop, halt)


@api("DELETE", "/nodes/{node}/qemu/{vmid}")
def destroy(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm = sim._vm(p)
    if vm.status == "running":
        raise PveError(500, f"VM {vm.vmid} is running - destroy failed")

    def remove() -> str | None:
        if vm.machine is not None:
            vm.machine.destroy()
        with sim._lock:
            sim._vms.pop(vm.vmid, None)
        sim.forget_holder(vm.vmid)
        return None

    return sim._task(vm.node, "qmdestroy", vm.vmid, user, sim.timings.qmdestroy, remove, lock="destroyed")


def _agent(sim: ProxmoxSim, vm: VM) -> Machine:
    if vm.status != "running" or vm.machine is None:
        raise PveError(500, f"VM {vm.vmid} is not running")
    if not as_bool(vm.config.get("agent", "0").split(",")[0].split("=")[-1]):
        raise PveError(500, "No QEMU guest agent configured")
    if vm.agent_at is None or sim.clock() < vm.agent_at:
        raise PveError(500, "QEMU guest agent is not running")
    return vm.machine


@api("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def interfaces(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    machine = _agent(sim, sim._vm(p, unlocked=False))
    mac = "bc:24:11:" + ":".join(f"{int(x):02x}" for x in machine.host.split(".")[1:])
    return {"result": [
        {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
            {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
            {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]},
        {"name": "eth0", "hardware-address": mac, "ip-addresses": [
            {"ip-address": machine.host, "ip-address-type": "ipv4", "prefix": 24},
            {"ip-address": "fe80::be24:11ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64}]},
    ]}


@api("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read")
def file_read(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    machine = _agent(sim, sim._vm(p, unlocked=False))
    if p["file"] != HOST_KEY_FILE:
        raise PveError(500, f"guest-file-open failed: No such file or directory: {p['file']}")
    content = machine.host_key + "\n"
    return {"content": content, "bytes": len(content)}


@api("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def list_snapshots(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    vm = sim._vm(p, unlocked=False)
    current: dict[str, Any] = {"name": "current", "description": "You are here!", "digest": secrets.token_hex(20)}
    if vm.snapshots:
        current["parent"] = vm.snapshots[-1]["name"]
    if vm.status == "running":
        current["running"] = 1
    return [*vm.snapshots, current]


@api("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def take_snapshot(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm, name = sim._vm(p), p["snapname"]
    if name == "current" or any(s["name"] == name for s in vm.snapshots):
        raise PveError(500, f"snapshot name '{name}' already used")

    def take() -> str | None:
        if vm.machine is not None:
            vm.machine.snapshot(name)
        entry: dict[str, Any] = {"name": name, "snaptime": int(time.time()), "description": p.get("description", "")}
        if as_bool(p.get("vmstate")) and vm.status == "running":
            entry["vmstate"] = 1
        if vm.snapshots:
            entry["parent"] = vm.snapshots[-1]["name"]
        vm.snapshots.append(entry)
        vm.snapshot_configs[name] = dict(vm.config)  # PVE keeps the config in the snapshot's section
        return None

    return sim._task(vm.node, "qmsnapshot", vm.vmid, user, sim.timings.qmsnapshot, take, lock="snapshot")


@api("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback")
def rollback(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm, name = sim._vm(p), p["snapname"]
    if not any(s["name"] == name for s in vm.snapshots):
        raise PveError(500, f"snapshot '{name}' does not exist")

    def restore() -> str | None:
        snap = next(s for s in vm.snapshots if s["name"] == name)
        _halt(vm)  # a snapshot without RAM state leaves the VM stopped, as on PVE
        if vm.machine is not None:
            vm.machine.rollback(name)
        vm.config = dict(vm.snapshot_configs.get(name, vm.config))  # the config comes back too (tags included)
        if snap.get("vmstate"):  # RAM restored: the guest (and its agent) resume where they were
            vm.machine.start() if vm.machine is not None else None
            vm.status, vm.started, vm.agent_at = "running", time.monotonic(), sim.clock()
        elif as_bool(p.get("start")):
            vm.machine.start() if vm.machine is not None else None
            vm.status, vm.started = "running", time.monotonic()
            vm.agent_at = None if sim.faults.agent_never_up else sim.clock() + sim.timings.agent_boot
        return None

    return sim._task(vm.node, "qmrollback", vm.vmid, user, sim.timings.qmrollback, restore, lock="rollback")


@api("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def delete_snapshot(sim: ProxmoxSim, p: dict[str, str], user: str) -> Any:
    vm, name = sim._vm(p), p["snapname"]
    if not any(s["name"] == name for s in vm.snapshots):
        raise PveError(500, f"snapshot '{name}' does not exist")

    def drop() -> str | None:
        vm.snapshots[:] = [s for s in vm.snapshots if s["name"] != name]
        vm.snapshot_configs.pop(name, None)
        if vm.machine is not None:
            vm.machine.drop_snapshot(name)
        return None

    return sim._task(vm.node, "qmdelsnapshot", vm.vmid, user, sim.timings.qmdelsnapshot, drop, lock="snapshot-delete")


@api("GET", "/cluster/nextid")
def nextid(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    if "vmid" in p:
        if int(p["vmid"]) in sim._vms:
            raise PveError(400, "Parameter verification failed.", {"vmid": f"VM {p['vmid']} already exists"})
        return p["vmid"]
    vmid = 100
    while vmid in sim._vms:
        vmid += 1
    return str(vmid)  # PVE documents an integer but sends a string


@api("GET", "/cluster/resources")
def resources(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    kind = p.get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "vm"):
        for vm in sim._vms.values():
            out.append({**_summary(vm), "id": f"qemu/{vm.vmid}", "type": "qemu", "node": vm.node,
                        "template": 1 if vm.template else 0, "maxcpu": int(vm.config.get("cores", "1"))})
    if kind in (None, "node"):
        out.extend({"id": f"node/{n}", "type": "node", "node": n, "status": "online"} for n in sim.nodes)
    return out


@api("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(sim: ProxmoxSim, p: dict[str, str], _: str) -> Any:
    task = sim.tasks.get(p["upid"])
    if task is None or task.node != p["node"]:
        raise PveError(500, f"unable to parse worker upid '{p['upid']}'" if not p["upid"].startswith("UPID:")
                       else f"no such task '{p['upid']}'")
    out: dict[str, Any] = {"upid": task.upid, "node": task.node, "pid": int(task.upid.split(":")[2], 16),
                           "pstart": int(task.upid.split(":")[3], 16), "starttime": task.starttime,
                           "type": task.type, "id": task.id, "user": task.user or "root@pam", "status": task.status}
    if task.exitstatus is not None:
        out["exitstatus"] = task.exitstatus
    return out
