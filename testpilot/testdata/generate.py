"""Deterministic generation of whole datasets, their identity hash and a checksum of the rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import faker

from testpilot.errors import ConfigError
from testpilot.testdata.columns import UniquenessError, column, finish, render_template
from testpilot.testdata.config import DatasetConfig
from testpilot.testdata.pools import derive_seed
from testpilot.testdata.schema import FieldSpec
from testpilot.testdata.validate import Lines, dataset_order, parse_datasets, validate_datasets

# Bump when a change here makes the same schema give different rows, so cached datasets are not reused.
GENERATOR_VERSION = "1"


@dataclass
class TableData:
    """One generated table: column names, row tuples, and the field specs that made them."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    specs: dict[str, FieldSpec] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    @property
    def primary_key(self) -> str | None:
        return "id" if "id" in self.columns else None


@dataclass
class GeneratedData:
    """Generated tables in load order (parents first), plus the identity of the datasets they came from."""

    identity: str
    tables: dict[str, TableData]

    def counts(self) -> dict[str, int]:
        return {name: len(table.rows) for name, table in self.tables.items()}

    def subset(self, names: Iterable[str]) -> GeneratedData:
        """The same rows for only some tables (e.g. one app's share of a cross-app dataset)."""
        wanted = set(names)
        return GeneratedData(self.identity, {n: t for n, t in self.tables.items() if n in wanted})

    def sample(self, rows: int = 3) -> dict[str, list[dict[str, Any]]]:
        """The first ``rows`` rows of each table as JSON-safe dicts (for a run artifact)."""
        return {name: [{c: jsonable(v) for c, v in zip(t.columns, row, strict=True)} for row in t.rows[:rows]]
                for name, t in self.tables.items()}


def for_target(data: GeneratedData, datasets: Mapping[str, DatasetConfig], target: str) -> GeneratedData:
    """Tables whose ``targets`` include ``target`` (an app or 'app.service'); no targets means everywhere."""
    app = target.split(".", 1)[0]
    names = [n for n, c in datasets.items() if not c.targets or target in c.targets or app in c.targets]
    return data.subset(names)


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: dates as ISO text, decimals as text, nested dicts kept."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dataset_identity(datasets: Mapping[str, DatasetConfig]) -> str:
    """Stable hash of (schemas, counts, locales, seeds, versions, generator and Faker versions).

    Equal for every spelling of the same schema ('int:1..9' or {type: int, min: 1, max: 9}); use it as
    the cache key of generated data.
    """
    parsed = parse_datasets(datasets)
    payload = {
        "generator": GENERATOR_VERSION,
        "faker": faker.VERSION,
        "datasets": {name: {"count": c.count, "locale": c.locale, "seed": c.seed, "version": c.version,
                            "schema": {f: s.canonical() for f, s in parsed[name].items()}}
                     for name, c in sorted(datasets.items())},
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def generate(datasets: Mapping[str, DatasetConfig], *, source: str = "",
             lines: Lines | None = None) -> GeneratedData:
    """Validate, then generate every dataset. Same datasets -> the same rows in any process."""
    parsed = validate_datasets(datasets, source=source, lines=lines)
    tables: dict[str, TableData] = {}
    for name in dataset_order(datasets, parsed):
        try:
            tables[name] = _table(name, datasets[name], parsed[name], tables)
        except UniquenessError as exc:
            field_name = getattr(exc, "field", "")
            raise ConfigError(f"dataset {name!r}, field {field_name!r}: {exc}", file=source,
                              field=f"data.{name}.schema.{field_name}",
                              hint="lower count, widen the values or drop unique") from None
    return GeneratedData(dataset_identity(datasets), tables)


def _table(name: str, config: DatasetConfig, fields: dict[str, FieldSpec],
           tables: Mapping[str, TableData]) -> TableData:
    base = (config.seed, config.version, name)

    def parents(ref: str) -> list[Any]:
        table, target = ref.split(".", 1)
        return tables[table].column(target)

    columns: dict[str, list[Any]] = {}
    n = config.count
    for field_name, spec in fields.items():
        if spec.per_parent is not None:
            # The per-parent ref drives the row count: each parent gets lo..hi children, in parent order.
            rng = random.Random(derive_seed(*base, field_name))
            r, (lo, hi) = rng.random, spec.per_parent
            keys = [v for v in parents(spec.ref) if v is not None]
            counts = [lo + int(r() * (hi - lo + 1)) for _ in keys]
            values = [k for k, c in zip(keys, counts, strict=True) for _ in range(c)]
            columns[field_name] = _named(field_name, finish, spec, values, rng, (*base, field_name),
                                         config.locale)
            n = len(values)
    for field_name, spec in fields.items():
        if field_name not in columns and spec.type != "template":
            columns[field_name] = _named(field_name, column, spec, n, (*base, field_name), config.locale,
                                         parents)
    for field_name, spec in fields.items():
        if spec.type == "template":
            rendered: list[Any] = render_template(spec.template, columns, n)
            rng = random.Random(derive_seed(*base, field_name))
            columns[field_name] = _named(field_name, finish, spec, rendered, rng, (*base, field_name),
                                         config.locale)
    order = tuple(fields)
    rows = list(zip(*(columns[f] for f in order), strict=True)) if order else [() for _ in range(n)]
    return TableData(name, order, rows, dict(fields))


def _named(field_name: str, fn: Any, *args: Any) -> list[Any]:
    try:
        return list(fn(*args))
    except UniquenessError as exc:
        exc.field = field_name  # type: ignore[attr-defined]
        raise


def rows_checksum(data: GeneratedData) -> str:
    """sha256 over every table's name, columns and rows in a canonical JSON form."""
    digest = hashlib.sha256()
    for name in sorted(data.tables):
        table = data.tables[name]
        digest.update(json.dumps([name, list(table.columns)]).encode())
        for row in table.rows:
            digest.update(json.dumps([jsonable(v) for v in row], sort_keys=True).encode())
            digest.update(b"\n")
    return digest.hexdigest()
