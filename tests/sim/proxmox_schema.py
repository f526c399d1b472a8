"""Route and validate Proxmox VE API calls against the official ``apidoc`` schema.

Proxmox has its own JSON-schema dialect (``optional``, ``typetext``, string formats such as
``pve-vmid`` and property-string ``format`` dicts like ``memory=current=2048``), which no
JSON-schema library speaks, so the checks the simulator relies on are written here. Messages
follow pve-common's wording so that clients see what the real API would say.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

# The schemas live in shared/ beside the repository (CI clones it there); TESTPILOT_API_SPECS overrides.
_SPECS = [Path(os.environ["TESTPILOT_API_SPECS"])] if os.environ.get("TESTPILOT_API_SPECS") else [
    Path(__file__).resolve().parents[3] / "shared" / "api-specs", Path("/work/shared/api-specs")]
SPEC = next((d for d in _SPECS if (d / "proxmox-ve-apidoc.json").exists()), _SPECS[-1]) / "proxmox-ve-apidoc.json"

_FORMATS = {
    "pve-node": re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"),
    "dns-name": re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"),
    "pve-configid": re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]+$"),
    "pve-storage-id": re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$"),
    "pve-poolid": re.compile(r"^[A-Za-z0-9_\-]+$"),
    "urlencoded": re.compile(r"^[%a-zA-Z0-9\-_.!~*'()]*$"),
}
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
_BOOL = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False, "on": True,
         "off": False}


@lru_cache(maxsize=1)
def routes() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(regex, schema path, info-by-method) for every documented endpoint, most specific first."""
    tree = json.loads(SPEC.read_text())
    found: list[tuple[re.Pattern[str], str, dict[str, Any]]] = []

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            pattern = re.sub(r"\\\{(\w[\w-]*)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(node["path"]))
            found.append((re.compile(f"^{pattern}$"), node["path"], node.get("info", {})))
            walk(node.get("children") or [])

    walk(tree)
    found.sort(key=lambda item: item[1].count("{"))
    return found


def route(path: str) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """The schema path, path parameters and method info for a request path like ``/nodes/pve1/qemu``."""
    for regex, schema_path, info in routes():
        match = regex.match(path)
        if match:
            return schema_path, match.groupdict(), info
    return None


def _schema_for(name: str, props: dict[str, Any]) -> dict[str, Any] | None:
    if name in props:
        return props[name]
    match = re.match(r"^([a-z]+)(\d+)$", name)
    if match and f"{match.group(1)}[n]" in props:
        return props[f"{match.group(1)}[n]"]
    return None


def _check_value(value: str, schema: dict[str, Any]) -> str | None:
    kind = schema.get("type", "string")
    if kind == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return f"type check ('integer') failed - got '{value}'"
        number: float = int(value)
    elif kind == "number":
        try:
            number = float(value)
        except ValueError:
            return f"type check ('number') failed - got '{value}'"
    elif kind == "boolean":
        if value.lower() not in _BOOL:
            return f"type check ('boolean') failed - got '{value}'"
        return None
    else:
        number = 0
    if kind in ("integer", "number"):
        if "minimum" in schema and number < float(schema["minimum"]):
            return f"value must have a minimum value of {schema['minimum']}"
        if "maximum" in schema and number > float(schema["maximum"]):
            return f"value must have a maximum value of {schema['maximum']}"
        return None
    if "enum" in schema and value not in schema["enum"]:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(schema['enum'])}'"
    if "maxLength" in schema and len(value) > int(schema["maxLength"]):
        return f"value may only be {schema['maxLength']} characters long"
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        return "value does not match the regex pattern"
    fmt = schema.get("format")
    if isinstance(fmt, dict):
        return _check_property_string(value, fmt)
    if fmt == "pve-vmid":
        return _check_value(value, {"type": "integer", "minimum": 100, "maximum": 999999999})
    if fmt == "pve-tag-list":
        bad = [t for t in re.split(r"[;, ]+", value) if t and not _TAG.match(t)]
        return f"invalid format - invalid tag '{bad[0]}'" if bad else None
    if fmt in _FORMATS and not _FORMATS[fmt].match(value):
        if fmt == "urlencoded":
            return "invalid format - invalid urlencoded string: " + value
        return f"invalid format - value does not look like a valid {fmt.removeprefix('pve-').replace('-', ' ')}"
    return None


def _check_property_string(value: str, fmt: dict[str, Any]) -> str | None:
    default_key = next((k for k, v in fmt.items() if v.get("default_key")), None)
    for part in value.split(","):
        if not part:
            continue
        key, sep, sub = part.partition("=")
        if not sep:
            if default_key is None:
                return "invalid format - value without key, but schema does not define a default key"
            key, sub = default_key, part
        aliases = {k: v["alias"] for k, v in fmt.items() if "alias" in v}
        key = aliases.get(key, key)
        if key not in fmt:
            return f"invalid format - property '{key}' is not defined in schema"
        problem = _check_value(sub, fmt[key])
        if problem:
            return f"invalid format - {key}: {problem}"
    return None


def validate(params: dict[str, str], info: dict[str, Any]) -> dict[str, str]:
    """Errors keyed by parameter, as in the ``errors`` object of a 400 'Parameter verification failed.'."""
    schema = info.get("parameters") or {}
    props: dict[str, Any] = schema.get("properties") or {}
    errors: dict[str, str] = {}
    for name, value in params.items():
        prop = _schema_for(name, props)
        if prop is None:
            if not schema.get("additionalProperties", 0):
                errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        problem = _check_value(value, prop)
        if problem:
            errors[name] = problem
    for name, prop in props.items():
        if "[n]" not in name and not prop.get("optional") and name not in params:
            errors[name] = "property is missing and it is not optional"
    return errors


def as_bool(value: str | None) -> bool:
    return bool(value) and _BOOL.get(str(value).lower(), False)
