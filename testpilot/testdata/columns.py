"""Column-wise generators: one field, ``n`` values, from a ``random.Random`` seeded for that field.

Every field has its own stream (seeded from dataset seed, version, dataset and field path), so adding or
reordering fields never changes the values of the others. Only ``random.random``/``getrandbits``/``sample``
are used with integer seeds: the Mersenne Twister gives the same numbers on every platform.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import rstr

from testpilot.testdata.pools import derive_seed, faker_column, pool
from testpilot.testdata.schema import FieldSpec, parse_field

FAKER_KINDS = ("name", "email", "phone", "address", "text", "faker")
DEFAULT_JSON_SCHEMA = {"reference": "pattern:[A-Z]{3}-[0-9]{6}", "score": "int:0..100", "verified": "bool"}
_REDRAW_ROUNDS = 50


class UniquenessError(ValueError):
    """Not enough distinct values exist (or could be found) for a unique field."""


def domain(spec: FieldSpec) -> tuple[int, Callable[[int], Any]] | None:
    """Discrete types as (size, offset -> value); lets unique fields sample offsets without replacement."""
    if spec.type == "enum":
        values = spec.values
        return len(values), values.__getitem__
    if spec.type == "bool":
        return 2, (1).__eq__
    if spec.type not in ("int", "decimal", "date", "timestamp"):
        return None
    lo, hi = spec.range()
    if spec.type == "int":
        return hi - lo + 1, lo.__add__
    if spec.type == "decimal":
        unit = 10 ** spec.scale
        low, high = math.ceil(lo * unit), math.floor(hi * unit)
        scale = -spec.scale
        return max(high - low + 1, 0), lambda k: Decimal(low + k).scaleb(scale)
    if spec.type == "date":
        first = lo.toordinal()
        return hi.toordinal() - first + 1, lambda k: dt.date.fromordinal(first + k)
    seconds = int((hi - lo).total_seconds())
    return seconds + 1, lambda k: lo + dt.timedelta(seconds=k)


def column(spec: FieldSpec, n: int, path: tuple[Any, ...], locale: str,
           parents: Callable[[str], list[Any]]) -> list[Any]:
    """``n`` values for ``spec``. ``path`` seeds the field; ``parents('t.f')`` gives a ref's parent values."""
    rng = random.Random(derive_seed(*path))
    return finish(spec, _values(spec, n, rng, path, locale, parents), rng, path, locale)


def finish(spec: FieldSpec, values: list[Any], rng: random.Random, path: tuple[Any, ...],
           locale: str) -> list[Any]:
    """Apply the modifiers: ``unique`` (sampled, redrawn or numbered), then ``nullable``."""
    if spec.unique:
        values = _make_unique(spec, values, rng, path, locale)
    if spec.nullable > 0:
        r = random.Random(derive_seed(*path, "null")).random
        ratio = spec.nullable
        values = [None if r() < ratio else v for v in values]
    return values


def _values(spec: FieldSpec, n: int, rng: random.Random, path: tuple[Any, ...], locale: str,
            parents: Callable[[str], list[Any]]) -> list[Any]:
    r = rng.random
    kind = spec.type
    found = domain(spec)
    if found is not None:
        size, value_of = found
        if spec.unique:
            if n > size:
                raise UniquenessError(f"impossible uniqueness: only {size} distinct values for {n} rows")
            return [value_of(k) for k in rng.sample(range(size), n)]
        if kind == "enum" and spec.weights:
            cum = list(itertools.accumulate(spec.weights))
            total, last = cum[-1], len(cum) - 1
            return [spec.values[bisect.bisect(cum, r() * total, 0, last)] for _ in range(n)]
        if size > 2 ** 52:
            return [value_of(rng.randrange(size)) for _ in range(n)]
        return [value_of(int(r() * size)) for _ in range(n)]
    if kind == "uuid":
        bits = rng.getrandbits
        return [str(uuid.UUID(int=bits(128), version=4)) for _ in range(n)]
    if kind == "float":
        lo, hi = spec.range()
        span = hi - lo
        return [lo + r() * span for _ in range(n)]
    if kind in FAKER_KINDS:
        return faker_column(kind, n, locale, derive_seed(*path, "pool"), rng, provider=spec.provider,
                            args=spec.args, max_chars=spec.max_chars)
    if kind == "pattern":
        return _pattern(spec.pattern, n, rng)
    if kind == "ref":
        candidates = [v for v in parents(spec.ref) if v is not None]
        if spec.unique:
            if n > len(candidates):
                raise UniquenessError(f"impossible uniqueness: {spec.ref} has {len(candidates)} rows for {n}")
            return rng.sample(candidates, n)
        if not candidates:
            raise UniquenessError(f"{spec.ref} has no rows to reference")
        k = len(candidates)
        return [candidates[int(r() * k)] for _ in range(n)]
    if kind == "json":
        schema = spec.schema or {k: parse_field(v) for k, v in DEFAULT_JSON_SCHEMA.items()}
        columns = {name: column(sub, n, (*path, name), locale, parents) for name, sub in schema.items()}
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    raise ValueError(f"{kind} fields are computed per row, not per column")


def _pattern(regex: str, n: int, rng: random.Random) -> list[str]:
    xeger = rstr.Rstr(rng).xeger
    return [xeger(regex) for _ in range(n)]


def _make_unique(spec: FieldSpec, values: list[Any], rng: random.Random, path: tuple[Any, ...],
                 locale: str) -> list[Any]:
    if domain(spec) is not None or spec.type == "ref":
        return values  # sampled without replacement already
    if spec.type == "uuid":
        bits = rng.getrandbits
        return _redraw(values, lambda k: [str(uuid.UUID(int=bits(128), version=4)) for _ in range(k)])
    if spec.type == "float":
        lo, hi = spec.range()
        return _redraw(values, lambda k: [lo + rng.random() * (hi - lo) for _ in range(k)])
    if spec.type == "pattern":
        return _redraw(values, lambda k: _pattern(spec.pattern, k, rng))
    if spec.type == "faker" and not all(isinstance(v, str) for v in values):
        rounds = itertools.count(1)
        return _redraw(values, lambda k: pool(locale, spec.provider, k,
                                              derive_seed(*path, "more", next(rounds)), spec.args))
    return suffix_duplicates(values, email=spec.type == "email")


def _redraw(values: list[Any], draw: Callable[[int], list[Any]]) -> list[Any]:
    """Redraw repeated values until all differ; gives up after ``_REDRAW_ROUNDS`` rounds without progress."""
    values = list(values)
    seen: set[Any] = set()
    dupes = []
    for i, v in enumerate(values):
        if v in seen:
            dupes.append(i)
        seen.add(v)
    stale = 0
    while dupes and stale < _REDRAW_ROUNDS:
        left = []
        for i, v in zip(dupes, draw(len(dupes)), strict=True):
            if v in seen:
                left.append(i)
            else:
                seen.add(v)
                values[i] = v
        stale = stale + 1 if len(left) == len(dupes) else 0
        dupes = left
    if dupes:
        raise UniquenessError(f"could not find {len(values)} distinct values; widen the field or lower count")
    return values


def suffix_duplicates(values: list[Any], *, email: bool = False) -> list[Any]:
    """Make strings unique by numbering repeats ('Ann Lee', 'Ann Lee 2'; 'ann@x.org', 'ann2@x.org')."""
    seen: set[Any] = set(values)
    used: set[Any] = set()
    counters: dict[Any, int] = {}
    out = []
    for v in values:
        if v is None or v not in used:
            used.add(v)
            out.append(v)
            continue
        k = counters.get(v, 1)
        while True:
            k += 1
            if email and "@" in v:
                local, _, host = v.rpartition("@")
                candidate = f"{local}{k}@{host}"
            else:
                candidate = f"{v} {k}"
            if candidate not in seen and candidate not in used:
                break
        counters[v] = k
        used.add(candidate)
        out.append(candidate)
    return out


# --- templates: "{name|first|lower}.{name|last|lower}@example.com" ---------------------------------------

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w]*)((?:\|[a-z]+)*)\}")
FILTERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower, "upper": str.upper, "title": str.title, "strip": str.strip,
    "first": lambda s: s.split()[0] if s.split() else "",
    "last": lambda s: s.split()[-1] if s.split() else "",
    "slug": lambda s: re.sub(r"[^a-z0-9]+", ".", s.lower()).strip("."),
}


def template_fields(template: str) -> list[tuple[str, list[str]]]:
    """The (field, filters) a template uses, in order."""
    return [(m.group(1), [f for f in m.group(2).split("|") if f])
            for m in _TOKEN.finditer(template) if m.group(1)]


def render_template(template: str, columns: dict[str, list[Any]], n: int) -> list[str]:
    """Render ``template`` for each of ``n`` rows; a null field renders as ''."""
    parts: list[Any] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        parts.append(template[pos:m.start()])
        if m.group(1):
            filters = [FILTERS[f] for f in m.group(2).split("|") if f]
            parts.append((columns[m.group(1)], filters))
        else:
            parts.append(m.group(0)[0])
        pos = m.end()
    parts.append(template[pos:])
    out = []
    for i in range(n):
        pieces = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            values, filters = part
            text = "" if values[i] is None else str(values[i])
            for f in filters:
                text = f(text)
            pieces.append(text)
        out.append("".join(pieces))
    return out
