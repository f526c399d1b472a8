"""Checks a ``data`` section before any row is generated or written."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from testpilot.errors import ConfigError
from testpilot.testdata.columns import FILTERS, domain, template_fields
from testpilot.testdata.config import DatasetConfig
from testpilot.testdata.pools import faker_for, pool, provider_method
from testpilot.testdata.schema import FieldSpec, SpecError, parse_field

Lines = Mapping[tuple[Any, ...], int]


class _Checker:
    def __init__(self, source: str, lines: Lines | None) -> None:
        self.source, self.lines = source, lines or {}

    def error(self, dataset: str, field: str | None, problem: str, hint: str) -> ConfigError:
        loc: tuple[Any, ...] = ("data", dataset, "schema", field) if field else ("data", dataset)
        line = next((self.lines[loc[:cut]] for cut in range(len(loc), 1, -1) if loc[:cut] in self.lines),
                    None)
        what = f"dataset {dataset!r}, field {field!r}" if field else f"dataset {dataset!r}"
        return ConfigError(f"{what}: {problem}", file=self.source, line=line,
                           field=".".join(str(p) for p in loc), hint=hint)


def parse_datasets(datasets: Mapping[str, DatasetConfig], *, source: str = "",
                   lines: Lines | None = None) -> dict[str, dict[str, FieldSpec]]:
    """Parse every field spec; raises ConfigError naming dataset and field."""
    check = _Checker(source, lines)
    parsed: dict[str, dict[str, FieldSpec]] = {}
    for name, config in datasets.items():
        parsed[name] = {}
        for field, raw in config.fields.items():
            try:
                spec = parse_field(raw)
            except SpecError as exc:
                raise check.error(name, field, str(exc), "see docs/testdata.md for field types") from None
            if field == "id" and not spec.unique:
                # ``id`` becomes the primary key, so it must be unique however it was declared.
                spec = replace(spec, unique=True)
            parsed[name][field] = spec
    return parsed


def dataset_order(datasets: Mapping[str, DatasetConfig], parsed: Mapping[str, dict[str, FieldSpec]],
                  check: _Checker | None = None) -> list[str]:
    """Dataset names, parents before the datasets that reference them."""
    graph = {name: {spec.ref_table for spec in fields.values() if spec.type == "ref"}
             for name, fields in parsed.items()}
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise (check or _Checker("", None)).error(
            exc.args[1][0], None, f"refs form a cycle: {cycle}",
            "break the cycle: make one side nullable and fill it after loading, or drop one ref") from None


def validate_datasets(datasets: Mapping[str, DatasetConfig], *, source: str = "",
                      lines: Lines | None = None) -> dict[str, dict[str, FieldSpec]]:
    """Raise ConfigError for the first problem in ``datasets``; return the parsed field specs.

    ``source`` and ``lines`` (the suite's key path -> line map) only make messages point at the file.
    """
    check = _Checker(source, lines)
    parsed = parse_datasets(datasets, source=source, lines=lines)
    for name, config in datasets.items():
        try:
            faker_for(config.locale)
        except AttributeError:
            raise check.error(name, None, f"unknown Faker locale {config.locale!r}",
                              "use a Faker locale such as en_US, de_DE, fr_FR") from None
        _check_fields(check, name, config, parsed)
    order = dataset_order(datasets, parsed, check)
    minimum = _minimum_counts(datasets, parsed, order)
    for name in order:
        _check_uniqueness(check, name, parsed[name], minimum)
    return parsed


def _check_fields(check: _Checker, name: str, config: DatasetConfig,
                  parsed: Mapping[str, dict[str, FieldSpec]]) -> None:
    fields = parsed[name]
    if not fields:
        raise check.error(name, None, "the schema has no fields", "declare at least one field, e.g. id: uuid")
    per_parent = [f for f, s in fields.items() if s.per_parent is not None]
    if len(per_parent) > 1:
        raise check.error(name, per_parent[1], "only one ref per dataset may set per_parent",
                          "keep per_parent on the owning parent's ref; make the others uniform picks")
    earlier: set[str] = set()
    plain = {f for f, s in fields.items() if s.type != "template"}
    for field, spec in fields.items():
        _check_spec(check, name, field, spec, config.locale, parsed, top=True)
        if spec.type == "template":
            for used, filters in template_fields(spec.template):
                if used not in plain and used not in earlier:
                    raise check.error(name, field, f"template uses unknown field {used!r}",
                                      f"use one of: {', '.join(sorted(plain | earlier))}")
                bad = [f for f in filters if f not in FILTERS]
                if bad:
                    raise check.error(name, field, f"unknown template filter {bad[0]!r}",
                                      f"filters: {', '.join(FILTERS)}")
            earlier.add(field)


def _check_spec(check: _Checker, name: str, field: str, spec: FieldSpec, locale: str,
                parsed: Mapping[str, dict[str, FieldSpec]], *, top: bool) -> None:
    if spec.type == "ref":
        if not top:
            raise check.error(name, field, "ref is not allowed inside json", "move the ref to a column")
        table, target = spec.ref_table, spec.ref_field
        if table not in parsed:
            raise check.error(name, field, f"ref to unknown dataset {table!r}",
                              f"declare data.{table} or fix the ref; datasets: {', '.join(sorted(parsed))}")
        if target not in parsed[table]:
            raise check.error(name, field, f"ref to unknown field {spec.ref!r}",
                              f"fields of {table}: {', '.join(parsed[table])}")
        target_spec = parsed[table][target]
        if not (target == "id" or target_spec.unique or target_spec.type == "uuid"):
            raise check.error(name, field, f"ref target {spec.ref!r} is not unique, so it cannot be a key",
                              f"mark {table}.{target} unique, or reference {table}.id")
        if spec.unique and spec.per_parent and spec.per_parent[1] > 1:
            raise check.error(name, field, "unique ref cannot have more than one child per parent",
                              "use per_parent=0-1 or drop unique")
    if spec.type == "faker":
        method = provider_method(locale, spec.provider)
        if method is None:
            raise check.error(name, field, f"unknown Faker provider {spec.provider!r} for locale {locale}",
                              "use a provider method name such as company, iban, job, date_of_birth")
        try:
            pool(locale, spec.provider, 1, 0, spec.args)
        except Exception as exc:  # noqa: BLE001 - any failure of a trial call is a config problem
            raise check.error(name, field, f"Faker provider {spec.provider!r} fails with these args: {exc}",
                              "fix 'args' to match the provider's keyword arguments") from None
    if spec.type == "json":
        if spec.unique:
            raise check.error(name, field, "unique is not supported for json", "drop unique")
        for sub_name, sub in spec.schema.items():
            _check_spec(check, name, f"{field}.{sub_name}", sub, locale, parsed, top=False)
    if spec.type == "template" and not top:
        raise check.error(name, field, "template is not allowed inside json", "move it to a column")


def _minimum_counts(datasets: Mapping[str, DatasetConfig], parsed: Mapping[str, dict[str, FieldSpec]],
                    order: list[str]) -> dict[str, int]:
    minimum: dict[str, int] = {}
    for name in order:
        driver = next((s for s in parsed[name].values() if s.per_parent is not None), None)
        minimum[name] = (minimum[driver.ref_table] * driver.per_parent[0]
                         if driver is not None and driver.per_parent is not None else datasets[name].count)
    return minimum


def _check_uniqueness(check: _Checker, name: str, fields: dict[str, FieldSpec],
                      minimum: Mapping[str, int]) -> None:
    rows = minimum[name]
    for field, spec in fields.items():
        if not spec.unique:
            continue
        found = domain(spec)
        if found is not None and found[0] < rows:
            raise check.error(name, field,
                              f"impossible uniqueness: unique {spec.type} has {found[0]} possible values "
                              f"but the dataset has {rows} rows",
                              "add values, widen the range, lower count or drop unique")
        if spec.type == "ref" and spec.per_parent is None and minimum[spec.ref_table] < rows:
            raise check.error(name, field,
                              f"impossible uniqueness: {spec.ref_table} has {minimum[spec.ref_table]} rows "
                              f"for {rows} unique refs", "lower count, raise the parent's count or drop unique")
