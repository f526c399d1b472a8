"""Every listed schema error is a ConfigError naming dataset, field and problem, and nothing is written."""

from __future__ import annotations

import pytest

from testpilot.errors import ConfigError
from testpilot.testdata import DatasetConfig, generate, list_namespaces, load, validate_datasets

RUN = "6f1c1d5e-0000-4000-8000-000000000001"

BAD = {
    "ref to an unknown table": (
        {"users": {"count": 3, "schema": {"id": "uuid"}},
         "payment_methods": {"count": 3, "schema": {"id": "uuid", "user_id": "ref:customers.id"}}},
        "payment_methods", "user_id", "ref to unknown dataset 'customers'"),
    "impossible uniqueness": (
        {"users": {"count": 10, "schema": {"id": "uuid", "tier": "enum:gold,silver,bronze unique"}}},
        "users", "tier", "impossible uniqueness: unique enum has 3 possible values but the dataset has 10 rows"),
    "bad range": (
        {"users": {"count": 3, "schema": {"id": "uuid", "age": "int:90..18"}}},
        "users", "age", "bad range: min 90 is greater than max 18"),
    "bad range bound": (
        {"users": {"count": 3, "schema": {"id": "uuid", "born": "date:2020-13-01..2021-01-01"}}},
        "users", "born", "bad range: '2020-13-01' is not a valid date bound"),
    "unknown Faker provider": (
        {"users": {"count": 3, "schema": {"id": "uuid", "job": "faker:no_such_provider"}}},
        "users", "job", "unknown Faker provider 'no_such_provider' for locale en_US"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_schema_is_rejected_before_any_row_is_written(case, sqlite_url, tmp_path):
    raw, dataset, field, problem = BAD[case]
    datasets = {name: DatasetConfig.model_validate(cfg) for name, cfg in raw.items()}
    with pytest.raises(ConfigError) as caught:
        validate_datasets(datasets, source="testpilot.yaml", lines={("data", dataset, "schema", field): 12})
    err = caught.value
    assert err.field == f"data.{dataset}.schema.{field}"
    assert str(err).startswith(f"testpilot.yaml:12 data.{dataset}.schema.{field}: "
                               f"dataset {dataset!r}, field {field!r}: {problem}")
    assert err.hint
    # The shell's sequence generate -> load stops at generate: nothing reaches the database.
    with pytest.raises(ConfigError):
        load(sqlite_url, generate(datasets), run_id=RUN)
    assert list_namespaces(sqlite_url) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("schema", "problem"), [
    ({"a": "uuid", "b": "ref:t.nope"}, "ref to unknown field 't.nope'"),
    ({"a": "int", "b": "ref:t.a"}, "ref target 't.a' is not unique"),
    ({"a": "template:{missing}"}, "template uses unknown field 'missing'"),
    ({"a": "text", "b": "template:{a|shout}"}, "unknown template filter 'shout'"),
    ({"a": "nosuchtype"}, "unknown field type 'nosuchtype'"),
    ({"a": "int nullable=2"}, "nullable ratio must be between 0 and 1"),
    ({"a": r"pattern:[a-"}, "invalid regex"),
    ({"a": "faker:seed_instance"}, "unknown Faker provider 'seed_instance'"),
    ({"a": {"type": "faker:pyint", "args": {"bogus": 1}}}, "fails with these args"),
    ({"id": "int:1..5"}, "impossible uniqueness"),  # id is the primary key, so unique
    ({"a": "bool unique"}, "impossible uniqueness"),
])
def test_more_schema_errors(schema, problem):
    with pytest.raises(ConfigError, match="dataset 't', field") as caught:
        validate_datasets({"t": DatasetConfig(count=6, schema=schema)})
    assert problem in str(caught.value)


def test_ref_cycle_and_unknown_locale():
    with pytest.raises(ConfigError, match="refs form a cycle"):
        validate_datasets({"a": DatasetConfig(schema={"id": "uuid", "b": "ref:b.id"}),
                           "b": DatasetConfig(schema={"id": "uuid", "a": "ref:a.id"})})
    with pytest.raises(ConfigError, match="dataset 'a': the schema has no fields"):
        validate_datasets({"a": DatasetConfig(schema={})})
    with pytest.raises(ConfigError, match="unknown Faker locale 'xx_XX'"):
        validate_datasets({"a": DatasetConfig(schema={"id": "uuid"}, locale="xx_XX")})


def test_uniqueness_that_only_fails_at_generation_is_still_a_config_error():
    datasets = {"t": DatasetConfig(count=50, schema={"code": r"pattern:[AB] unique"})}
    validate_datasets(datasets)  # a regex's size is not known up front
    with pytest.raises(ConfigError, match="dataset 't', field 'code': could not find 50 distinct values"):
        generate(datasets)


def test_example_datasets_are_valid(example):
    parsed = validate_datasets(example)
    assert parsed["payment_methods"]["user_id"].ref == "users.id"


def test_the_suite_example_parses_from_yaml():
    import yaml

    from testpilot.suite import parse_suite

    text = """
apps: {shop: {path: shop, test_command: pytest}}
data:
  users: {count: 10, schema: {id: uuid, name: name, email: email, created_at: timestamp}}
  payment_methods: {count: 5, schema: {id: uuid, user_id: "ref:users.id",
                    type: "enum:credit_card,paypal,bank_transfer", details: json}}
"""
    suite = parse_suite(yaml.safe_load(text))
    parsed = validate_datasets(suite.data)
    assert parsed["payment_methods"]["type"].values == ("credit_card", "paypal", "bank_transfer")
    assert generate(suite.data).counts() == {"users": 10, "payment_methods": 5}
