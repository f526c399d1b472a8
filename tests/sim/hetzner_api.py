"""Endpoint handlers of the Hetzner simulator: servers, server actions, actions, images, SSH keys."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import yaml

from tests.sim.hetzner import (
    BTRFS_ROLLBACK_MARKER,
    BTRFS_SNAPSHOT_MARKER,
    ApiError,
    HetznerSim,
    Server,
    api,
    matches_selector,
    now_iso,
    paginate,
)
from tests.sim.hetzner_schema import server_template

Params = dict[str, str]
Query = list[tuple[str, str]]
_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$")


def _cloud_config(user_data: str) -> dict[str, Any]:
    try:
        parsed = yaml.safe_load(user_data) if user_data.startswith("#cloud-config") else None
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _host_key(user_data: str) -> str | None:
    keys = _cloud_config(user_data).get("ssh_keys") or {}
    return keys.get("ed25519_private") if isinstance(keys, dict) else None


def _login_user(sim: HetznerSim, user_data: str) -> str:
    users = _cloud_config(user_data).get("users") or []
    named = [u["name"] for u in users if isinstance(u, dict) and u.get("name")]
    return named[0] if named else sim.login_user


def _image_ref(sim: HetznerSim, ref: str | int) -> dict[str, Any]:
    for image in sim.images.values():
        if str(image["id"]) == str(ref) or (image["name"] and image["name"] == ref):
            return image
    raise ApiError(400, "invalid_input", f"image '{ref}' not found",
                   {"fields": [{"name": "image", "messages": ["image not found"]}]})


def _key_ref(sim: HetznerSim, ref: str | int) -> dict[str, Any]:
    for key in sim.ssh_keys.values():
        if str(key["id"]) == str(ref) or key["name"] == ref:
            return key
    raise ApiError(400, "invalid_input", f"SSH key '{ref}' not found",
                   {"fields": [{"name": "ssh_keys", "messages": ["ssh key not found"]}]})


def _check_labels(labels: dict[str, str]) -> None:
    bad = [k for k in labels if not re.fullmatch(r"([a-z0-9A-Z.-]+/)?[a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?", k)]
    if bad:
        raise ApiError(400, "invalid_input", f"invalid label key '{bad[0]}'",
                       {"fields": [{"name": "labels", "messages": [f"invalid label key '{bad[0]}'"]}]})


def _boot(server: Server) -> None:
    """Power on: act on a pending btrfs snapshot/rollback first, as a reboot into a new default subvolume would."""
    machine = server.machine
    for marker, act in ((BTRFS_SNAPSHOT_MARKER, machine.snapshot), (BTRFS_ROLLBACK_MARKER, machine.rollback)):
        name = (machine.guest_file(marker) or "").strip()
        if name:
            machine.remove_guest_file(marker)
            act(name)
    machine.start()
    server.data["status"] = "running"


def _halt(server: Server) -> None:
    server.machine.stop()
    server.data["status"] = "off"


@api("POST", "/servers")
def create_server(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    if sim.faults.create_errors:
        status, code, message = sim.faults.create_errors.pop(0)
        raise ApiError(status, code, message)
    name = body["name"]
    if not _HOSTNAME.match(name):
        raise ApiError(400, "invalid_input", "invalid input in field 'name'",
                       {"fields": [{"name": "name", "messages": ["Name must be a valid hostname."]}]})
    if any(s.data["name"] == name for s in sim.servers.values()):
        raise ApiError(409, "uniqueness_error", "server name is already used", {"fields": [{"name": "name"}]})
    labels = body.get("labels") or {}
    _check_labels(labels)
    image = _image_ref(sim, body["image"])
    keys = [_key_ref(sim, ref)["public_key"] for ref in body.get("ssh_keys", [])]
    user_data = body.get("user_data", "")
    server_id = next(sim._ids)
    machine = sim.machines.create(f"hc-{server_id}", user=_login_user(sim, user_data), authorized_keys=keys,
                                  image=sim.image_payloads.get(image["id"]), host_key_private=_host_key(user_data))
    data = server_template()
    data.update(id=server_id, name=name, status="initializing", created=now_iso(), labels=dict(labels),
                image=image, iso=None, locked=False, rescue_enabled=False, backup_window=None,
                placement_group=None, private_net=[], volumes=[], load_balancers=[],
                protection={"delete": False, "rebuild": False})
    # hcloud >= 2.2x also reads 'available'/'recommended' per location, newer than the stored schema.
    data["server_type"] = {**data["server_type"], "name": body["server_type"], "deprecated": False,
                           "locations": [{"id": 1, "name": "fsn1", "deprecation": None, "available": True,
                                          "recommended": True}]}
    data["public_net"] = {"ipv4": {"id": server_id, "ip": machine.host, "blocked": False,
                                   "dns_ptr": f"static.{machine.host}.clients.your-server.de"},
                          "ipv6": None, "floating_ips": [], "firewalls": []}
    server = Server(data, machine, user_data)
    sim.servers[server_id] = server

    def created() -> None:
        data["status"] = "off"

    create = sim.action("create_server", [(server_id, "server")], sim.timings.create_server, created, lock=server)
    next_actions = []
    if body.get("start_after_create", True):
        finish_at = sim._effects[create["id"]][0]
        next_actions.append(sim.action("start_server", [(server_id, "server")], sim.timings.start_server,
                                       lambda: _boot(server), after=finish_at))
    sim.advance()
    return 201, {"server": data, "action": create, "next_actions": next_actions,
                 "root_password": None if keys else "sim-root-password"}


@api("GET", "/servers")
def list_servers(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    items = [s.data for s in sim.servers.values()]
    for key, value in q:
        if key == "name":
            items = [s for s in items if s["name"] == value]
        elif key == "label_selector":
            items = [s for s in items if matches_selector(s["labels"], value)]
    statuses = [v for k, v in q if k == "status"]
    if statuses:
        items = [s for s in items if s["status"] in statuses]
    return 200, paginate(sorted(items, key=lambda s: s["id"]), q, "servers")


@api("GET", "/servers/{id}")
def get_server(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return 200, {"server": sim.server_or_404(p).data}


@api("PUT", "/servers/{id}")
def update_server(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    server = sim.server_or_404(p)
    if "labels" in body:
        _check_labels(body["labels"])
        server.data["labels"] = dict(body["labels"])  # replaced wholesale, never merged
    if "name" in body:
        server.data["name"] = body["name"]
    return 200, {"server": server.data}


@api("DELETE", "/servers/{id}")
def delete_server(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    server = sim.unlocked(sim.server_or_404(p))
    server.data["status"] = "deleting"

    def gone() -> None:
        server.machine.destroy()
        sim.servers.pop(server.data["id"], None)

    action = sim.action("delete_server", [(server.data["id"], "server")], sim.timings.delete_server, gone, lock=server)
    sim.advance()
    return 200, {"action": action}


def _server_action(sim: HetznerSim, p: Params, command: str, seconds: float, effect: Any) -> tuple[int, Any]:
    server = sim.unlocked(sim.server_or_404(p))
    action = sim.action(command, [(server.data["id"], "server")], seconds, lambda: effect(server), lock=server)
    sim.advance()
    return 201, {"action": action}


@api("POST", "/servers/{id}/actions/poweron")
def poweron(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return _server_action(sim, p, "start_server", sim.timings.start_server, _boot)


@api("POST", "/servers/{id}/actions/poweroff")
def poweroff(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return _server_action(sim, p, "stop_server", sim.timings.stop_server, _halt)


@api("POST", "/servers/{id}/actions/shutdown")
def shutdown(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return _server_action(sim, p, "shutdown_server", sim.timings.stop_server, _halt)


@api("POST", "/servers/{id}/actions/reboot")
def reboot(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return _server_action(sim, p, "reboot_server", sim.timings.reboot_server, lambda s: (_halt(s), _boot(s)))


@api("POST", "/servers/{id}/actions/reset")
def reset(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return _server_action(sim, p, "reset_server", sim.timings.reboot_server, lambda s: (_halt(s), _boot(s)))


@api("POST", "/servers/{id}/actions/rebuild")
def rebuild(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    image = _image_ref(sim, body["image"])
    server = sim.server_or_404(p)
    if "user_data" in body:
        server.user_data = body["user_data"]

    def rebuilt(s: Server) -> None:
        s.machine.rebuild(sim.image_payloads.get(image["id"]), _host_key(s.user_data))
        s.data.update(image=image, status="running")
        s.machine.start()

    code, out = _server_action(sim, p, "rebuild_server", sim.timings.rebuild_server, rebuilt)
    out["root_password"] = None
    return code, out


@api("POST", "/servers/{id}/actions/create_image")
def create_image(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    server = sim.unlocked(sim.server_or_404(p))
    labels = body.get("labels") or {}
    _check_labels(labels)
    image_id = next(sim._ids)
    image = sim._image(image_id, body.get("type", "snapshot"), status="creating", labels=dict(labels),
                       description=body.get("description") or f"{server.data['name']}-snapshot",
                       created_from={"id": server.data["id"], "name": server.data["name"]}, image_size=1.2)
    sim.images[image_id] = image
    sim.image_payloads[image_id] = server.machine.export("current")  # point in time: the request
    action = sim.action("create_image", [(server.data["id"], "server"), (image_id, "image")],
                        sim.timings.create_image, lambda: image.update(status="available"), lock=server)
    sim.advance()
    return 201, {"image": image, "action": action}


@api("GET", "/actions/{id}")
@api("GET", "/servers/actions/{id}")
def get_action(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    action = sim.actions.get(int(p["id"])) if p["id"].isdigit() else None
    if action is None:
        raise ApiError(404, "not_found", f"action with ID '{p['id']}' not found")
    return 200, {"action": action}


@api("GET", "/servers/{id}/actions/{action_id}")
def get_server_action(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return get_action(sim, {"id": p["action_id"]}, q, body)


@api("GET", "/images")
def list_images(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    items = [i for i in sim.images.values() if i["status"] != "deleted"]
    types = [v for k, v in q if k == "type"]
    if types:
        items = [i for i in items if i["type"] in types]
    for key, value in q:
        if key == "label_selector":
            items = [i for i in items if matches_selector(i["labels"], value)]
        elif key == "name":
            items = [i for i in items if i["name"] == value]
    return 200, paginate(sorted(items, key=lambda i: i["id"]), q, "images")


def _image_or_404(sim: HetznerSim, p: Params) -> dict[str, Any]:
    image = sim.images.get(int(p["id"])) if p["id"].isdigit() else None
    if image is None:
        raise ApiError(404, "not_found", f"image with ID '{p['id']}' not found")
    return image


@api("GET", "/images/{id}")
def get_image(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    return 200, {"image": _image_or_404(sim, p)}


@api("PUT", "/images/{id}")
def update_image(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    image = _image_or_404(sim, p)
    if "labels" in body:
        _check_labels(body["labels"])
        image["labels"] = dict(body["labels"])
    if "description" in body:
        image["description"] = body["description"]
    return 200, {"image": image}


@api("DELETE", "/images/{id}")
def delete_image(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    image = _image_or_404(sim, p)
    if image["type"] == "system":
        raise ApiError(403, "forbidden", "system images cannot be deleted")
    del sim.images[image["id"]]
    sim.image_payloads.pop(image["id"], None)
    return 204, None


def _fingerprint(public_key: str) -> str:
    try:
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (IndexError, ValueError) as exc:
        raise ApiError(400, "invalid_input", "invalid input in field 'public_key'",
                       {"fields": [{"name": "public_key", "messages": ["invalid public key"]}]}) from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@api("POST", "/ssh_keys")
def create_ssh_key(sim: HetznerSim, p: Params, q: Query, body: dict[str, Any]) -> tuple[int, Any]:
    fingerprint = _fingerprint(body["public_key"])
    for key in sim.ssh_keys.values():
        if key["name"] == body["name"]:
            raise ApiError(409, "uniqueness_error", "SSH key with the same name already exists",
                           {"fields": [{"name": "name"}]})
        if key["fingerprint"] == fingerprint:
            raise ApiError(409, "uniqueness_error", "SSH key with the same fingerprint already exists",
                           {"fields": [{"name": "public_key"}]})
    labels = body.get("labels") or {}
    _check_labels(labels)
    key_id = next(sim._ids)
    sim.ssh_keys[key_id] = {"id": key_id, "name": body["name"], "fingerprint": fingerprint,
                            "public_key": body["public_key"].strip(), "labels": dict(labels), "created": now_iso()}
    return 201, {"ssh_key": sim.ssh_keys[key_id]}


@api("GET", "/ssh_keys")
def list_ssh_keys(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    items = list(sim.ssh_keys.values())
    for key, value in q:
        if key in ("name", "fingerprint"):
            items = [k for k in items if k[key] == value]
        elif key == "label_selector":
            items = [k for k in items if matches_selector(k["labels"], value)]
    return 200, paginate(items, q, "ssh_keys")


@api("DELETE", "/ssh_keys/{id}")
def delete_ssh_key(sim: HetznerSim, p: Params, q: Query, body: Any) -> tuple[int, Any]:
    if sim.ssh_keys.pop(int(p["id"]) if p["id"].isdigit() else -1, None) is None:
        raise ApiError(404, "not_found", f"SSH key with ID '{p['id']}' not found")
    return 204, None
