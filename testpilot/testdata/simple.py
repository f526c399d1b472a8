"""Interim seeding: Faker rows per declared field, inserted with SQLAlchemy. Replaced by issue 7's engine."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import sqlalchemy as sa
from faker import Faker

from testpilot.testdata.config import DatasetConfig


def _value(fake: Faker, rng: random.Random, spec: str, tables: dict[str, list[dict[str, Any]]]) -> Any:
    if spec == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if spec.startswith("ref:"):
        table, field = spec[4:].split(".")
        return rng.choice(tables[table])[field]
    if spec.startswith("enum:"):
        return rng.choice(spec[5:].split(","))
    if spec == "timestamp":
        return fake.date_time_between("-2y", "now")
    if spec == "json":
        return json.dumps({"note": fake.word()})
    return str(getattr(fake, spec)())


def seed(url: str, datasets: dict[str, DatasetConfig]) -> dict[str, int]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, ds in datasets.items():
        fake, rng = Faker(ds.locale), random.Random(f"{ds.seed}:{ds.version}:{name}")
        fake.seed_instance(ds.seed)
        tables[name] = [{f: _value(fake, rng, str(s), tables) for f, s in ds.fields.items()} for _ in range(ds.count)]
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    for name, ds in datasets.items():
        cols = [sa.Column(f, sa.DateTime if s == "timestamp" else sa.String(255),
                          *([sa.ForeignKey(str(s)[4:])] if str(s).startswith("ref:") else []),
                          primary_key=(f == "id")) for f, s in ds.fields.items()]
        sa.Table(name, meta, *cols)
    with engine.begin() as conn:
        meta.create_all(conn)
        for table in meta.sorted_tables:
            conn.execute(table.insert(), tables[table.name])
    engine.dispose()
    return {n: len(rows) for n, rows in tables.items()}
