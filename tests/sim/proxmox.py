"""A stateful Proxmox VE API simulator over HTTPS, faithful to the official schema for what Testpilot uses.

Tasks get a UPID, run for a configurable time with a lock on their VM, then stop with an
``exitstatus``. Bad parameters get 400 "Parameter verification failed." with per-field errors,
server-side failures get a 500 whose message is in the HTTP reason phrase, like pveproxy. VMs are
backed by a ``MachineFactory`` (a real sshd per VM, or in-memory fakes).

Start it in-process with ``ProxmoxSim(...).start()`` or standalone with
``python -m tests.sim.proxmox --port 8006``.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.sim import proxmox_schema as schema
from tests.sim.machines import FakeMachines, Machine, MachineFactory
from tests.sim.tls import make_tls_files
from tests.sim.wire import LoopbackServer, Request, Response

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


@dataclass
class ProxmoxTimings:
    """Seconds each kind of task runs, and how long a booted guest takes until its agent answers."""

    qmclone_linked: float = 0.0
    qmclone_full: float = 0.0
    qmstart: float = 0.0
    qmstop: float = 0.0
    qmsnapshot: float = 0.0
    qmrollback: float = 0.0
    qmdelsnapshot: float = 0.0
    qmdestroy: float = 0.0
    qmcreate: float = 0.0
    agent_boot: float = 0.0

    @classmethod
    def realistic(cls, scale: float = 1.0) -> ProxmoxTimings:
        """Durations seen on a small cluster with a 20 GB template on LVM-thin, times ``scale``."""
        real = cls(qmclone_linked=3, qmclone_full=45, qmstart=4, qmstop=3, qmsnapshot=2, qmrollback=4,
                   qmdelsnapshot=2, qmdestroy=3, qmcreate=3, agent_boot=20)
        return cls(**{k: v * scale for k, v in real.__dict__.items()})


@dataclass
class ProxmoxFaults:
    clone_http_500: int = 0            # this many next clone calls fail at once with a 500
    clone_id_races: int = 0            # this many next clones lose their newid to another client's clone
    clone_task_error: str = ""         # clone tasks stop with this exitstatus
    start_task_error: str = ""
    agent_never_up: bool = False
    slow_factor: float = 1.0           # multiplies every task duration


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str
    starttime: int
    finish_at: float
    effect: Callable[[], str | None]
    locked: VM | None = None
    duration: float = 0.0
    status: str = "running"
    exitstatus: str | None = None
    claimed: bool = False  # its effect is being applied (outside the simulator's lock)


@dataclass
class VM:
    vmid: int
    node: str
    config: dict[str, str]
    template: bool = False
    status: str = "stopped"
    lock: str | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    snapshot_configs: dict[str, dict[str, str]] = field(default_factory=dict)  # the config each snapshot saw
    machine: Machine | None = None
    image: Any = None            # what a fresh machine is created from
    agent_at: float | None = None
    started: float = 0.0


class PveError(Exception):
    def __init__(self, status: int, reason: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.errors = status, reason, errors


class ProxmoxSim:
    """The simulated cluster. Public state for assertions: ``vms()``, ``tasks``, ``faults``, ``timings``."""

    def __init__(self, *, machines: MachineFactory | None = None, nodes: tuple[str, ...] = ("pve1", "pve2"),
                 templates: dict[int, str] | None = None, timings: ProxmoxTimings | None = None,
                 faults: ProxmoxFaults | None = None, users: dict[str, str] | None = None,
                 tokens: dict[str, str] | None = None, port: int = 0, latency: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, workdir: Path | None = None) -> None:
        self.machines = machines or FakeMachines(block=70)
        self.nodes = nodes
        self.timings = timings or ProxmoxTimings()
        self.faults = faults or ProxmoxFaults()
        self.users = users if users is not None else {"root@pam": "sim-password"}
        self.tokens = tokens if tokens is not None else {"root@pam!testpilot": "00000000-sim0-token"}
        self.clock = clock
        self.tasks: dict[str, Task] = {}
        self.requests: list[tuple[str, str]] = []
        # Who holds which VM, from the run tag Testpilot writes on acquire ('idle' on release): the
        # contention test's evidence. A takeover is a run tagging a VM another run still holds.
        self.holders: dict[int, str] = {}
        self.max_holders = 0
        self.takeovers: list[tuple[int, str, str]] = []
        self._vms: dict[int, VM] = {}
        self._tickets: dict[str, str] = {}
        self._lock = threading.RLock()
        self._pids = itertools.count(0x1000)
        for vmid, name in (templates or {9000: "tmpl-debian12"}).items():
            self._vms[vmid] = VM(vmid, nodes[0], {"name": name, "cores": "2", "memory": "2048", "agent": "1",
                                                   "ostype": "l26", "scsi0": f"local-lvm:base-{vmid}-disk-0,size=20G",
                                                   "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                                                   "ide2": "local-lvm:cloudinit", "template": "1"},
                                 template=True)
        self._own_dir = workdir is None
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="pvesim-"))
        self.tls = make_tls_files(self._dir / "tls")
        self.server = LoopbackServer(self.handle, port=port, tls=self.tls, latency=latency)

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> ProxmoxSim:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        with self._lock:
            for vm in self._vms.values():
                if vm.machine is not None:
                    vm.machine.destroy()
        self.machines.close()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ProxmoxSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def vms(self) -> list[VM]:
        """Every non-template VM, after finishing due tasks: a leak check is ``sim.vms() == []``."""
        self._advance()
        with self._lock:
            return [vm for vm in self._vms.values() if not vm.template]

    def record_holder(self, vmid: int, tags: str) -> None:
        with self._lock:
            run = next((t[len("tp-run-"):] for t in tags.replace(",", ";").split(";") if t.startswith("tp-run-")), "")
            previous = self.holders.get(vmid)
            if run and run != "idle":
                if previous and previous != run:
                    self.takeovers.append((vmid, previous, run))
                self.holders[vmid] = run
            else:
                self.holders.pop(vmid, None)
            self.max_holders = max(self.max_holders, len(self.holders))

    def forget_holder(self, vmid: int) -> None:
        with self._lock:
            self.holders.pop(vmid, None)

    # -- the wire ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if not request.path.startswith("/api2/json/"):
            return Response(501, {"data": None}, reason=f"Method '{request.method} {request.path}' not implemented")
        path = request.path[len("/api2/json"):].rstrip("/")
        with self._lock:
            self.requests.append((request.method, path))
        self._advance()
        try:
            with self._lock:
                data = self._dispatch(request, path)
            self._advance()  # a zero-length task is already stopped when its UPID is returned
            return Response(200, {"data": data})
        except PveError as err:
            body: dict[str, Any] = {"data": None}
            if err.errors:
                body["errors"] = err.errors
            return Response(err.status, body, reason=err.reason)

    def _dispatch(self, request: Request, path: str) -> Any:
        found = schema.route(path)
        if found is None or request.method not in found[2]:
            raise PveError(501, f"Method '{request.method} {path}' not implemented")
        schema_path, path_params, info = found
        pairs = request.form() if request.method in ("POST", "PUT") else request.query
        params = {**dict(pairs), **{k: unquote(v) for k, v in path_params.items()}}
        user = self._authenticate(request, schema_path)
        errors = schema.validate(params, info[request.method])
        if errors:
            raise PveError(400, "Parameter verification failed.", errors)
        handler = _HANDLERS.get((request.method, schema_path))
        if handler is None:
            raise PveError(501, f"Method '{request.method} {path}' not implemented in the simulator")
        return handler(self, params, user)

    def _authenticate(self, request: Request, schema_path: str) -> str:
        if schema_path == "/access/ticket":
            return ""
        auth = request.header("authorization")
        if auth.startswith("PVEAPIToken="):
            token_id, _, secret = auth[len("PVEAPIToken="):].partition("=")
            if self.tokens.get(token_id) != secret or not secret:
                raise PveError(401, "invalid token value!")
            return token_id
        cookie = dict(part.strip().split("=", 1) for part in request.header("cookie").split(";") if "=" in part)
        ticket = unquote(cookie.get("PVEAuthCookie", ""))
        if ticket not in self._tickets:
            raise PveError(401, "No ticket")
        user, csrf = self._tickets[ticket].split("\0")
        if request.method != "GET" and request.header("csrfpreventiontoken") != csrf:
            raise PveError(401, "Permission denied - invalid csrf token")
        return user

    # -- tasks --------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Apply the effects of the tasks that are due. Like PVE's task workers, tasks of different VMs
        run at the same time: an effect (a rollback copying a home, sshd restarting) runs outside the
        simulator's lock, and its task reads 'running' until it is done. Effects that add or remove
        VMs take the lock themselves."""
        with self._lock:
            now = self.clock()
            due = [t for t in sorted(self.tasks.values(), key=lambda t: t.finish_at)
                   if t.status == "running" and not t.claimed and t.finish_at <= now]
            for task in due:
                task.claimed = True
        for task in due:
            try:
                error = task.effect()
            except PveError as err:
                error = err.reason
            with self._lock:
                task.status, task.exitstatus = "stopped", error or "OK"
                if task.locked is not None:
                    task.locked.lock = None

    def _task(self, node: str, kind: str, vmid: int, user: str, seconds: float,
              effect: Callable[[], str | None], lock: str | None = None, lock_vm: VM | None = None) -> str:
        vm = lock_vm or self._vms.get(vmid)
        if lock and vm is not None:
            vm.lock = lock
        else:
            vm = None
        start = int(time.time())
        upid = f"UPID:{node}:{next(self._pids):08X}:{secrets.randbelow(1 << 28):08X}:{start:08X}:{kind}:{vmid}:{user or 'root@pam'}:"
        self.tasks[upid] = Task(upid, node, kind, str(vmid), user, start,
                                self.clock() + seconds * self.faults.slow_factor, effect, vm,
                                seconds * self.faults.slow_factor)
        return upid

    def _vm(self, params: dict[str, str], *, unlocked: bool = True) -> VM:
        vmid = int(params["vmid"])
        vm = self._vms.get(vmid)
        if vm is None or vm.node != params["node"]:
            raise PveError(500, f"Configuration file 'nodes/{params['node']}/qemu-server/{vmid}.conf' does not exist")
        if unlocked and vm.lock and not schema.as_bool(params.get("skiplock")):
            raise PveError(500, f"VM is locked ({vm.lock})")
        return vm

    def _node(self, params: dict[str, str]) -> str:
        if params["node"] not in self.nodes:
            raise PveError(500, f"hostname lookup '{params['node']}' failed - failed to get address info for: "
                                f"{params['node']}: Name or service not known")
        return params["node"]


_HANDLERS: dict[tuple[str, str], Callable[[ProxmoxSim, dict[str, str], str], Any]] = {}


def api(method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _HANDLERS[(method, path)] = fn
        return fn
    return register


# Endpoint handlers live in tests.sim.proxmox_api; importing it registers them.
from tests.sim import proxmox_api  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Run the simulator as a standalone process (``python -m tests.sim.proxmox --port 8006``)."""
    from tests.sim.cli import serve
    serve("proxmox", argv)


if __name__ == "__main__":
    main()
