"""A stateful Hetzner Cloud API simulator over plain HTTP, validated against the official OpenAPI document.

Actions run for a configurable time; while one runs on a server, other actions on it get 423
``locked``. Names and SSH keys are unique (409 ``uniqueness_error``), labels are replaced wholesale,
lists paginate and filter by label selector, and every error uses the ``{"error": {...}}`` envelope.
Faults: 429 storms (with ``RateLimit-*`` headers), 5xx on create, failing or slow actions.

Point hcloud at it with ``hcloud.Client(token, api_endpoint=sim.url, poll_interval=0)``, or run it
standalone with ``python -m tests.sim.hetzner --port 8080``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.sim import hetzner_schema as schema
from tests.sim.machines import FakeMachines, Machine, MachineFactory
from tests.sim.wire import LoopbackServer, Request, Response

RATE_LIMIT = 3600
BTRFS_SNAPSHOT_MARKER = ".sim/btrfs-snapshot-on-boot"   # content: snapshot name (taken at next boot)
BTRFS_ROLLBACK_MARKER = ".sim/btrfs-rollback-on-boot"   # content: snapshot name (restored at next boot)


@dataclass
class HetznerTimings:
    create_server: float = 0.0
    start_server: float = 0.0
    stop_server: float = 0.0
    reboot_server: float = 0.0
    rebuild_server: float = 0.0
    create_image: float = 0.0
    delete_server: float = 0.0

    @classmethod
    def realistic(cls, scale: float = 1.0) -> HetznerTimings:
        """Typical durations on Hetzner Cloud for a small (cx22) server, times ``scale``."""
        real = cls(create_server=12, start_server=8, stop_server=4, reboot_server=15, rebuild_server=25,
                   create_image=40, delete_server=4)
        return cls(**{k: v * scale for k, v in real.__dict__.items()})


@dataclass
class HetznerFaults:
    rate_limit_storm: int = 0                 # the next N requests get 429
    rate_limit_after: int = 0                 # ... starting after this many more requests
    rate_limit_reset_seconds: float = 1.0
    create_errors: list[tuple[int, str, str]] = field(default_factory=list)  # (status, code, message) per create
    action_errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # command -> (code, message)
    slow_factor: float = 1.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details or {}, headers or {}


@dataclass
class Server:
    data: dict[str, Any]
    machine: Machine
    user_data: str = ""
    action: dict[str, Any] | None = None   # the running action that locks it


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HetznerSim:
    """The simulated project. Assert on ``servers``, ``images``, ``ssh_keys``, ``actions``, ``requests``."""

    def __init__(self, *, machines: MachineFactory | None = None, tokens: set[str] | None = None,
                 timings: HetznerTimings | None = None, faults: HetznerFaults | None = None,
                 login_user: str = "testuser", port: int = 0, latency: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.machines = machines or FakeMachines(block=80)
        self.tokens = tokens if tokens is not None else {"sim-token"}
        self.timings = timings or HetznerTimings()
        self.faults = faults or HetznerFaults()
        self.login_user = login_user
        self.clock = clock
        self.servers: dict[int, Server] = {}
        self.images: dict[int, dict[str, Any]] = {}
        self.image_payloads: dict[int, Any] = {}
        self.ssh_keys: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._effects: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._remaining = RATE_LIMIT
        for name, flavor, version in (("debian-12", "debian", "12"), ("ubuntu-24.04", "ubuntu", "24.04")):
            image_id = next(self._ids)
            self.images[image_id] = self._image(image_id, "system", name=name, description=name,
                                                os_flavor=flavor, os_version=version)
        self.server = LoopbackServer(self.handle, port=port, latency=latency)

    def start(self) -> HetznerSim:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        with self._lock:
            for server in self.servers.values():
                server.machine.destroy()
        self.machines.close()

    def __enter__(self) -> HetznerSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{self.server.url}/v1"

    def live_servers(self) -> list[dict[str, Any]]:
        """Servers that exist after due actions finish: a leak check is ``sim.live_servers() == []``."""
        with self._lock:
            self.advance()
            return [s.data for s in self.servers.values()]

    # -- the wire ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        with self._lock:
            try:
                self.advance()
                self._rate_limit()
                status, body = self._dispatch(request)
            except ApiError as err:
                status, body = err.status, {"error": {"code": err.code, "message": err.message,
                                                      "details": err.details}}
                headers = {**self._rate_headers(), **err.headers}
                self.requests.append((request.method, request.path, status))
                return Response(status, body, headers=headers)
            self.requests.append((request.method, request.path, status))
            return Response(status, body, headers=self._rate_headers())

    def _rate_headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(RATE_LIMIT), "RateLimit-Remaining": str(self._remaining),
                "RateLimit-Reset": str(int(time.time()) + 1)}

    def _rate_limit(self) -> None:
        if self.faults.rate_limit_after > 0:
            self.faults.rate_limit_after -= 1
        elif self.faults.rate_limit_storm > 0:
            self.faults.rate_limit_storm -= 1
            self._remaining = 0
            reset = time.time() + self.faults.rate_limit_reset_seconds
            raise ApiError(429, "rate_limit_exceeded", f"limit of {RATE_LIMIT} requests per hour reached",
                           headers={"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(reset + 0.999))})
        self._remaining = max(1, self._remaining - 1)

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        if not request.path.startswith("/v1/"):
            raise ApiError(404, "not_found", "not found")
        token = request.header("authorization").removeprefix("Bearer ")
        if token not in self.tokens:
            raise ApiError(401, "unauthorized", "unable to authenticate")
        path = request.path[3:].rstrip("/")
        found = schema.route(path)
        if found is None or schema.operation(found[0], request.method) is None:
            raise ApiError(404, "not_found", f"{request.method} {path} not found")
        template, params = found
        try:
            body = request.json() if request.body else None
        except ValueError as exc:
            raise ApiError(400, "json_error", f"invalid JSON: {exc}") from exc
        fields = schema.validate_query(template, request.method, request.query)
        fields += schema.validate_body(template, request.method, body)
        if fields:
            names = ", ".join(f"'{f['name']}'" for f in fields)
            raise ApiError(400, "invalid_input", f"invalid input in fields {names}", {"fields": fields})
        handler = HANDLERS.get((request.method, template))
        if handler is None:
            raise ApiError(404, "not_found", f"{request.method} {path} is not simulated")
        return handler(self, params, request.query, body or {})

    # -- actions ----------------------------------------------------------------------------------
    def advance(self) -> None:
        now = self.clock()
        for action_id, (at, effect) in sorted(self._effects.items(), key=lambda item: item[1][0]):
            if at > now:
                continue
            del self._effects[action_id]
            action = self.actions[action_id]
            failure = self.faults.action_errors.get(action["command"])
            if failure is None:
                try:
                    effect()
                except ApiError as err:
                    failure = (err.code, err.message)
            action.update(status="error" if failure else "success", progress=100, finished=now_iso(),
                          error={"code": failure[0], "message": failure[1]} if failure else None)
            for resource in action["resources"]:
                server = self.servers.get(resource["id"]) if resource["type"] == "server" else None
                if server is not None and server.action is action:
                    server.action = None

    def action(self, command: str, resources: list[tuple[int, str]], seconds: float,
               effect: Callable[[], None], *, after: float | None = None, lock: Server | None = None) -> dict[str, Any]:
        action_id = next(self._ids)
        action = {"id": action_id, "command": command, "status": "running", "progress": 0, "started": now_iso(),
                  "finished": None, "error": None, "resources": [{"id": i, "type": t} for i, t in resources]}
        self.actions[action_id] = action
        self._effects[action_id] = ((after if after is not None else self.clock())
                                    + seconds * self.faults.slow_factor, effect)
        if lock is not None:
            lock.action = action
        return action

    def server_or_404(self, params: dict[str, str]) -> Server:
        server = self.servers.get(int(params["id"])) if params["id"].isdigit() else None
        if server is None:
            raise ApiError(404, "not_found", f"server with ID '{params['id']}' not found")
        return server

    def unlocked(self, server: Server) -> Server:
        if server.action is not None:
            raise ApiError(423, "locked", f"server {server.data['id']} is locked by a running "
                                          f"{server.action['command']} action")
        return server

    def _image(self, image_id: int, kind: str, **extra: Any) -> dict[str, Any]:
        base = {"id": image_id, "type": kind, "status": "available", "name": None, "description": "",
                "image_size": None, "disk_size": 20, "created": now_iso(), "created_from": None,
                "bound_to": None, "os_flavor": "debian", "os_version": None, "rapid_deploy": kind == "system",
                "protection": {"delete": False}, "deprecated": None, "deleted": None, "labels": {},
                "architecture": "x86"}
        base.update(extra)
        return base


HANDLERS: dict[tuple[str, str], Callable[..., tuple[int, Any]]] = {}


def api(method: str, template: str) -> Callable[[Callable[..., tuple[int, Any]]], Callable[..., tuple[int, Any]]]:
    def register(fn: Callable[..., tuple[int, Any]]) -> Callable[..., tuple[int, Any]]:
        HANDLERS[(method, template)] = fn
        return fn
    return register


_SELECTOR = re.compile(r"\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")


def matches_selector(labels: dict[str, str], selector: str) -> bool:
    """Hetzner's label selector: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (...)``."""
    for term in re.split(r",(?![^()]*\))", selector):
        if not term.strip():
            continue
        match = _SELECTOR.fullmatch(term)
        if match is None:
            raise ApiError(400, "invalid_input", f"invalid label_selector term '{term}'",
                           {"fields": [{"name": "label_selector", "messages": ["invalid selector"]}]})
        neg, key, op, value, set_op, values = match.groups()
        if neg:
            ok = key not in labels
        elif op in ("=", "=="):
            ok = labels.get(key) == value
        elif op == "!=":
            ok = labels.get(key) != value
        elif set_op:
            members = {v.strip() for v in values.split(",")}
            ok = (labels.get(key) in members) if set_op == "in" else (labels.get(key) not in members)
        else:
            ok = key in labels
        if not ok:
            return False
    return True


def paginate(items: list[dict[str, Any]], query: list[tuple[str, str]], key: str) -> dict[str, Any]:
    q = dict(query)
    page, per_page = int(q.get("page", 1)), min(int(q.get("per_page", 25)), 50)
    total = len(items)
    last = max(1, -(-total // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    return {key: chunk, "meta": {"pagination": {
        "page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < last else None, "last_page": last, "total_entries": total}}}


from tests.sim import hetzner_api  # noqa: E402,F401  (registers the endpoint handlers)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator as a standalone process (``python -m tests.sim.hetzner --port 8080``)."""
    from tests.sim.cli import serve
    serve("hetzner", argv)


if __name__ == "__main__":
    main()
