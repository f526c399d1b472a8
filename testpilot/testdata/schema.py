"""Field specs: the string shorthand and dict forms of a dataset field, parsed into ``FieldSpec``.

Shorthand: ``TYPE[:ARG] [key=value ...] [unique] [nullable[=RATIO]]``, for example ``"int:18..90"``,
``"email unique"``, ``"ref:users.id per_parent=1-5"``, ``"enum:card=5,paypal=3,bank=1"``.
``pattern:REGEX`` and ``template:TEXT`` take the rest of the string verbatim. The dict form takes the
same keys, and its ``type`` may itself be a shorthand: ``{type: "ref:users.id", per_parent: "1-5"}``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

TYPES = ("uuid", "name", "email", "phone", "address", "text", "int", "float", "decimal", "bool", "date",
         "timestamp", "enum", "ref", "json", "pattern", "faker", "template")
ALIASES = {"integer": "int", "boolean": "bool", "datetime": "timestamp", "derived": "template",
           "regex": "pattern", "string": "text", "str": "text"}
# Types whose argument is the rest of the shorthand, spaces included.
_VERBATIM = ("pattern", "template")
_RANGED = ("int", "float", "decimal", "date", "timestamp")
DEFAULT_RANGES: dict[str, tuple[Any, Any]] = {
    "int": (0, 1_000_000), "float": (0.0, 1.0), "decimal": (0, 1000),
    # Fixed, not "now": a default relative to the clock would break determinism.
    "date": (dt.date(2020, 1, 1), dt.date(2025, 12, 31)),
    "timestamp": (dt.datetime(2020, 1, 1), dt.datetime(2025, 12, 31, 23, 59, 59)),
}
DEFAULT_NULL_RATIO = 0.1
_TRAILING = re.compile(r"\s+(unique|nullable)(?:=([0-9.]+))?\s*$")


class SpecError(ValueError):
    """A field spec is malformed; ``validate_datasets`` turns it into a ConfigError with the field."""


@dataclass
class FieldSpec:
    """One parsed field. Build it with ``parse_field`` or directly from Python."""

    type: str
    min: Any = None
    max: Any = None
    values: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    ref: str = ""
    per_parent: tuple[int, int] | None = None
    schema: dict[str, FieldSpec] = field(default_factory=dict)
    pattern: str = ""
    provider: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    unique: bool = False
    nullable: float = 0.0
    scale: int = 2
    max_chars: int = 200

    @property
    def ref_table(self) -> str:
        return self.ref.split(".", 1)[0]

    @property
    def ref_field(self) -> str:
        return self.ref.split(".", 1)[1] if "." in self.ref else ""

    def range(self) -> tuple[Any, Any]:
        lo, hi = DEFAULT_RANGES[self.type]
        return (lo if self.min is None else self.min, hi if self.max is None else self.max)

    def canonical(self) -> dict[str, Any]:
        """Plain, JSON-able form; equal for every spelling of the same field (used by the identity hash)."""
        out = asdict(self)
        out["schema"] = {name: spec.canonical() for name, spec in self.schema.items()}
        for key in ("min", "max"):
            if isinstance(out[key], dt.date):
                out[key] = out[key].isoformat()
        return out


def parse_field(spec: Any) -> FieldSpec:
    """Parse a shorthand string, a dict or a FieldSpec. Raises SpecError naming the problem."""
    if isinstance(spec, FieldSpec):
        return _check(spec)
    if isinstance(spec, str):
        return _check(_from_dict(_shorthand(spec)))
    if isinstance(spec, dict):
        base = dict(spec)
        head = base.pop("type", None)
        if not isinstance(head, str):
            raise SpecError("a field given as a mapping needs a 'type', e.g. {type: int, min: 1, max: 9}")
        return _check(_from_dict({**_shorthand(head), **base}))
    raise SpecError(f"a field is a string like 'int:1..9' or a mapping with 'type', not {type(spec).__name__}")


def _shorthand(text: str) -> dict[str, Any]:
    text = text.strip()
    head, _, rest = text.partition(" ")
    name, colon, arg = head.partition(":")
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name in _VERBATIM:
        body, modifiers = text.partition(":")[2], {}
        # Trailing ' unique' / ' nullable[=R]' are modifiers; a regex ending in them needs the dict form.
        while (match := _TRAILING.search(body)) is not None:
            modifiers[match.group(1)] = match.group(2) or True
            body = body[:match.start()]
        return {"type": name, name: body, **modifiers}
    out: dict[str, Any] = {"type": name}
    if colon:
        out["_arg"] = arg
    for token in rest.split():
        key, eq, value = token.partition("=")
        out[key] = value if eq else True
    return out


def _from_dict(raw: dict[str, Any]) -> FieldSpec:
    raw = dict(raw)
    kind = str(raw.pop("type")).strip().lower()
    kind = ALIASES.get(kind, kind)
    arg = raw.pop("_arg", None)
    if kind not in TYPES:
        raise SpecError(f"unknown field type {kind!r}; known: {', '.join(TYPES)}")
    spec = FieldSpec(type=kind)
    if arg is not None:
        _apply_arg(spec, arg)
    for key, value in raw.items():
        _apply_key(spec, key, value)
    return spec


def _apply_arg(spec: FieldSpec, arg: str) -> None:
    if spec.type in _RANGED:
        lo, sep, hi = arg.partition("..")
        if not sep:
            raise SpecError(f"{spec.type} range must look like 'LOW..HIGH', got {arg!r}")
        spec.min, spec.max = _value(spec.type, lo), _value(spec.type, hi)
    elif spec.type == "enum":
        _set_enum(spec, arg.split(","))
    elif spec.type == "ref":
        spec.ref = arg
    elif spec.type == "faker":
        spec.provider = arg
    else:
        raise SpecError(f"type {spec.type!r} takes no ':' argument")


def _apply_key(spec: FieldSpec, key: str, value: Any) -> None:
    if key == "unique":
        spec.unique = _bool(value)
    elif key == "nullable":
        spec.nullable = DEFAULT_NULL_RATIO if value is True else 0.0 if value is False else _float(value)
    elif key in ("min", "max"):
        setattr(spec, key, _value(spec.type, value))
    elif key == "values":
        _set_enum(spec, value)
    elif key in ("to", "ref"):
        spec.ref = str(value)
    elif key == "per_parent":
        spec.per_parent = _per_parent(value)
    elif key == "schema":
        if not isinstance(value, dict):
            raise SpecError("json 'schema' must be a mapping of field -> spec")
        spec.schema = {str(k): parse_field(v) for k, v in value.items()}
    elif key in ("pattern", "template", "provider"):
        setattr(spec, key, str(value))
    elif key == "args":
        if not isinstance(value, dict):
            raise SpecError("faker 'args' must be a mapping of keyword -> value")
        spec.args = dict(value)
    elif key in ("scale", "max_chars"):
        setattr(spec, key, _int(value, key))
    else:
        raise SpecError(f"unknown option {key!r} for a {spec.type} field")


def _set_enum(spec: FieldSpec, items: Any) -> None:
    if isinstance(items, dict):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            name, eq, weight = str(item).strip().partition("=")
            pairs.append((name, weight if eq else None))
    if not pairs or any(not name for name, _ in pairs):
        raise SpecError("enum needs at least one non-empty value, e.g. 'enum:a,b,c'")
    spec.values = tuple(name for name, _ in pairs)
    if any(w is not None for _, w in pairs):
        weights = tuple(_float(1 if w is None else w) for _, w in pairs)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise SpecError("enum weights must be >= 0 and not all 0")
        spec.weights = weights


def _per_parent(value: Any) -> tuple[int, int]:
    text = str(value)
    lo, sep, hi = text.partition("-") if "-" in text else text.partition("..")
    try:
        low, high = (int(lo), int(hi)) if sep else (int(text), int(text))
    except ValueError:
        raise SpecError(f"per_parent must look like '1-5' or '3', got {text!r}") from None
    if low < 0 or high < low:
        raise SpecError(f"per_parent range {text!r} is empty or negative")
    return low, high


def _value(kind: str, raw: Any) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind in ("float", "decimal"):
            return float(raw)
        if kind == "date":
            return raw if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime) \
                else dt.date.fromisoformat(str(raw))
        if kind == "timestamp":
            if isinstance(raw, dt.datetime):
                return raw.replace(tzinfo=None)
            if isinstance(raw, dt.date):
                return dt.datetime(raw.year, raw.month, raw.day)
            return dt.datetime.fromisoformat(str(raw)).replace(tzinfo=None)
    except (TypeError, ValueError):
        raise SpecError(f"bad range: {raw!r} is not a valid {kind} bound") from None
    raise SpecError(f"type {kind!r} takes no min/max")


def _check(spec: FieldSpec) -> FieldSpec:
    if spec.type in _RANGED:
        lo, hi = spec.range()
        if lo > hi:
            raise SpecError(f"bad range: min {lo} is greater than max {hi}")
    if not 0.0 <= spec.nullable <= 1.0:
        raise SpecError(f"nullable ratio must be between 0 and 1, got {spec.nullable}")
    if spec.type == "enum" and not spec.values:
        raise SpecError("enum needs values, e.g. 'enum:a,b,c'")
    if spec.type == "ref" and not re.fullmatch(r"[^.\s]+\.[^.\s]+", spec.ref):
        raise SpecError(f"ref must look like 'table.field', got {spec.ref!r}")
    if spec.per_parent is not None and spec.type != "ref":
        raise SpecError("per_parent only applies to ref fields")
    if spec.type == "pattern":
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            raise SpecError(f"invalid regex {spec.pattern!r}: {exc}") from None
    if spec.type == "faker" and not spec.provider:
        raise SpecError("faker needs a provider, e.g. 'faker:company'")
    if spec.type == "template" and not spec.template:
        raise SpecError("template needs text, e.g. 'template:{name|lower}@example.com'")
    if spec.type == "decimal" and not 0 <= spec.scale <= 10:
        raise SpecError("decimal scale must be between 0 and 10")
    if spec.max_chars < 5:
        raise SpecError("max_chars must be at least 5")
    return spec


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise SpecError(f"expected true or false, got {value!r}")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(f"expected a number, got {value!r}") from None


def _int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SpecError(f"{key} must be an integer, got {value!r}") from None
