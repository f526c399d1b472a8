"""Route and validate Hetzner Cloud API calls against the official OpenAPI document.

Bodies and query parameters are checked with ``jsonschema`` after turning OpenAPI 3.0's
``nullable`` into JSON-schema null types; response bodies can be checked the same way in tests.
"""

from __future__ import annotations

import copy
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

# The schemas live in shared/ beside the repository (CI clones it there); TESTPILOT_API_SPECS overrides.
_SPECS = [Path(os.environ["TESTPILOT_API_SPECS"])] if os.environ.get("TESTPILOT_API_SPECS") else [
    Path(__file__).resolve().parents[3] / "shared" / "api-specs", Path("/work/shared/api-specs")]
SPEC = next((d for d in _SPECS if (d / "hetzner-cloud-openapi.json").exists()), _SPECS[-1]) / "hetzner-cloud-openapi.json"


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items() if k not in ("example", "examples", "description")}
        if out.pop("nullable", False):
            if "type" in out:
                out["type"] = [out["type"], "null"]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@lru_cache(maxsize=1)
def _registry() -> Registry:
    document = _nullable({"components": spec()["components"]})
    return Registry().with_resource("spec", Resource.from_contents(document, default_specification=DRAFT4))


def _validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    rewritten = json.loads(json.dumps(_nullable(schema)).replace('"$ref": "#/', '"$ref": "spec#/'))
    return jsonschema.Draft4Validator(rewritten, registry=_registry())


@lru_cache(maxsize=1)
def routes() -> list[tuple[re.Pattern[str], str]]:
    found = []
    for path in spec()["paths"]:
        pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(path))
        found.append((re.compile(f"^{pattern}$"), path))
    found.sort(key=lambda item: item[1].count("{"))
    return found


def route(path: str) -> tuple[str, dict[str, str]] | None:
    for regex, template in routes():
        match = regex.match(path)
        if match:
            return template, match.groupdict()
    return None


def operation(template: str, method: str) -> dict[str, Any] | None:
    return spec()["paths"].get(template, {}).get(method.lower())


def _message(error: jsonschema.ValidationError) -> tuple[str, str]:
    field = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return (f"{field}.{missing[0]}" if field else missing[0]) if missing else field, "Missing data for required field."
    return field or "body", error.message


_ID_OR_NAME = re.compile(r"^(image|server_type|location|datacenter|ssh_keys\.\d+)$")


def _id_for_name(error: jsonschema.ValidationError) -> bool:
    # The schema types "ID or name" fields as strings, but the API (and hcloud) also send integer IDs.
    path = ".".join(str(p) for p in error.absolute_path)
    return (error.validator == "type" and isinstance(error.instance, int)
            and bool(_ID_OR_NAME.match(path)))


def validate_body(template: str, method: str, body: Any) -> list[dict[str, Any]]:
    """Field errors as the API reports them under ``error.details.fields``."""
    op = operation(template, method) or {}
    content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
    if content is None:
        return []
    if body is None:
        return [{"name": "body", "messages": ["Missing request body."]}]
    errors: dict[str, list[str]] = {}
    for error in _validator(content["schema"]).iter_errors(body):
        if _id_for_name(error):
            continue
        name, message = _message(error)
        errors.setdefault(name, []).append(message)
    return [{"name": k, "messages": v} for k, v in errors.items()]


def validate_query(template: str, method: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
    op = operation(template, method) or {}
    known = {p["name"]: p["schema"] for p in op.get("parameters", []) if p.get("in") == "query"}
    errors = []
    for name, value in query:
        schema = known.get(name)
        if schema is None:
            continue  # the API ignores unknown query parameters
        item = schema.get("items", schema)
        candidate: Any = value
        if item.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", value):
                errors.append({"name": name, "messages": [f"'{value}' is not a valid integer"]})
                continue
            candidate = int(value)
        problems = [e.message for e in _validator(item).iter_errors(candidate)]
        if problems:
            errors.append({"name": name, "messages": problems})
    return errors


def validate_response(template: str, method: str, status: int, body: Any) -> list[str]:
    """Schema problems in a simulator response (used by tests to keep the simulator honest)."""
    op = operation(template, method) or {}
    response = op.get("responses", {}).get(str(status)) or op.get("responses", {}).get(f"{str(status)[0]}xx")
    if not response or "content" not in response:
        return []
    schema = response["content"]["application/json"]["schema"]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(schema).iter_errors(body)]


def server_template() -> dict[str, Any]:
    """The documented example server, as the base of every simulated server (so no field is missing)."""
    op = operation("/servers", "post")
    assert op is not None
    example = op["responses"]["201"]["content"]["application/json"]["examples"]["default"]["value"]
    return copy.deepcopy(example["server"])
