"""Each field type and modifier, through the public generate() API (no database)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from decimal import Decimal

import pytest

from testpilot.testdata import DatasetConfig, FieldSpec, dataset_identity, generate, parse_field
from testpilot.testdata.pools import POOL_SIZE


def one(schema: dict, count: int = 300, **kw) -> dict[str, list]:
    data = generate({"t": DatasetConfig(count=count, schema=schema, **kw)})
    table = data.tables["t"]
    return {c: table.column(c) for c in table.columns}


def test_shorthand_and_dict_forms_are_the_same_field():
    assert parse_field("int:1..9 unique nullable=0.2").canonical() == parse_field(
        {"type": "int", "min": 1, "max": 9, "unique": True, "nullable": 0.2}).canonical()
    assert parse_field({"type": "ref:users.id", "per_parent": "1-5"}).per_parent == (1, 5)
    a = {"t": DatasetConfig(count=3, schema={"n": "int:1..9"})}
    b = {"t": DatasetConfig(count=3, schema={"n": {"type": "integer", "min": 1, "max": 9}})}
    c = {"t": DatasetConfig(count=3, schema={"n": FieldSpec(type="int", min=1, max=9)})}
    assert dataset_identity(a) == dataset_identity(b) == dataset_identity(c)
    assert dataset_identity(a) != dataset_identity({"t": DatasetConfig(count=3, schema={"n": "int:1..8"})})


def test_numbers_booleans_and_ranges():
    cols = one({"i": "int:18..90", "f": "float:-1.5..2.5", "d": "decimal:10..20 scale=3", "b": "bool",
                "day": "date:2024-02-01..2024-02-29", "ts": "timestamp:2024-01-01..2024-01-02"})
    assert all(isinstance(v, int) and 18 <= v <= 90 for v in cols["i"]) and len(set(cols["i"])) > 30
    assert all(-1.5 <= v <= 2.5 for v in cols["f"])
    assert all(isinstance(v, Decimal) and 10 <= v <= 20 and v.as_tuple().exponent == -3 for v in cols["d"])
    assert set(cols["b"]) == {True, False}
    assert all(dt.date(2024, 2, 1) <= v <= dt.date(2024, 2, 29) for v in cols["day"])
    assert all(dt.datetime(2024, 1, 1) <= v <= dt.datetime(2024, 1, 2) for v in cols["ts"])


def test_enum_plain_and_weighted():
    cols = one({"plain": "enum:a,b,c", "weighted": "enum:common=9,rare=1"}, count=2000)
    assert set(cols["plain"]) == {"a", "b", "c"}
    counts = Counter(cols["weighted"])
    assert set(counts) == {"common", "rare"} and counts["common"] > 5 * counts["rare"]


@pytest.mark.parametrize("count", [50, POOL_SIZE + 500])
def test_faker_backed_types_small_and_pooled(count):
    cols = one({"id": "uuid", "name": "name", "email": "email", "phone": "phone", "address": "address",
                "text": "text max_chars=80", "company": "faker:company",
                "dob": {"type": "faker:date_of_birth", "args": {"minimum_age": 18, "maximum_age": 30}}},
               count=count)
    assert all(uuid.UUID(v).version == 4 for v in cols["id"]) and len(set(cols["id"])) == count
    assert all(" " in v for v in cols["name"])
    assert all(re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", v) for v in cols["email"])
    assert all(sum(ch.isdigit() for ch in v) >= 7 for v in cols["phone"])
    assert all(any(ch.isdigit() for ch in v) and "\n" not in v for v in cols["address"])
    assert all(0 < len(v) <= 80 for v in cols["text"])
    assert all(isinstance(v, str) and v for v in cols["company"])
    today = dt.date.today()
    assert all(isinstance(v, dt.date) and 17 <= (today - v).days // 365 <= 31 for v in cols["dob"])
    # Pooled or not, values vary realistically rather than repeating one entry.
    assert len(set(cols["name"])) > count * 0.5 and len(set(cols["phone"])) > count * 0.9


def test_locale_is_used():
    cols = one({"address": "address"}, count=20, locale="de_DE")
    assert any(re.search(r"\b\d{5}\b", v) for v in cols["address"])  # German postcodes


def test_pattern_json_and_template():
    cols = one({"code": r"pattern:ORD-[A-Z]{2}\d{4}", "first": "faker:first_name", "last": "faker:last_name",
                "profile": {"type": "json", "schema": {"age": "int:1..3", "tags": {"type": "json",
                                                                                      "schema": {"x": "bool"}}}},
                "login": "template:{first|lower}.{last|lower|slug}@example.com",
                "greeting": "template:Hi {first}, {{literal}}"})
    assert all(re.fullmatch(r"ORD-[A-Z]{2}\d{4}", v) for v in cols["code"])
    assert all(set(p) == {"age", "tags"} and 1 <= p["age"] <= 3 and isinstance(p["tags"]["x"], bool)
               for p in cols["profile"])
    for first, last, login, greeting in zip(cols["first"], cols["last"], cols["login"], cols["greeting"],
                                            strict=True):
        assert login == f"{first.lower()}.{re.sub('[^a-z0-9]+', '.', last.lower()).strip('.')}@example.com"
        assert greeting == f"Hi {first}, {{literal}}"


def test_default_json_has_a_small_object():
    details = one({"details": "json"}, count=5)["details"]
    assert all(isinstance(d, dict) and d for d in details)


def test_refs_uniform_and_per_parent():
    data = generate({
        "users": DatasetConfig(count=40, schema={"id": "uuid"}),
        "orders": DatasetConfig(count=999, schema={"id": "uuid", "user_id": "ref:users.id per_parent=1-5"}),
        "reviews": DatasetConfig(count=100, schema={"user_id": "ref:users.id"}),
        "profiles": DatasetConfig(count=40, schema={"user_id": "ref:users.id unique"}),
    })
    ids = set(data.tables["users"].column("id"))
    per_user = Counter(data.tables["orders"].column("user_id"))
    assert set(per_user) == ids and all(1 <= n <= 5 for n in per_user.values())
    assert len(data.tables["orders"].rows) == sum(per_user.values())  # count follows per_parent
    assert set(data.tables["reviews"].column("user_id")) <= ids
    assert sorted(data.tables["profiles"].column("user_id")) == sorted(ids)  # one-to-one


def test_unique_modifier():
    cols = one({"email": "email unique", "n": "int:1..3000 unique", "kind": "enum:a,b,c,d unique",
                "name": "name unique", "code": r"pattern:[A-C]\d{3} unique"}, count=4)
    assert sorted(cols["kind"]) == ["a", "b", "c", "d"]
    big = one({"email": "email unique", "n": "int:1..3000 unique", "name": "name unique",
               "code": r"pattern:[A-C]\d{3} unique", "d": "date:2020-01-01..2030-01-01 unique"}, count=2500)
    for name, values in big.items():
        assert len(set(values)) == 2500, name
    assert all("@" in e and e.count("@") == 1 for e in big["email"])


def test_nullable_modifier():
    cols = one({"a": "text nullable=0.3", "b": {"type": "int", "nullable": True}, "c": "int"}, count=2000)
    assert 400 < cols["a"].count(None) < 800
    assert 100 < cols["b"].count(None) < 300  # nullable: true means 10 %
    assert cols["c"].count(None) == 0


def test_adding_a_field_keeps_the_other_fields():
    before = one({"id": "uuid", "n": "int:1..100"}, count=20)
    after = one({"id": "uuid", "extra": "name", "n": "int:1..100"}, count=20)
    assert before["id"] == after["id"] and before["n"] == after["n"]
