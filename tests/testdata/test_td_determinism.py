"""Same schema + seed + version -> the same rows, in this process and in fresh ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from testpilot.testdata import DatasetConfig, dataset_identity, generate, rows_checksum

# Pinned: a change here means every cached dataset changes. If that is on purpose, bump
# GENERATOR_VERSION (or it follows a Faker upgrade) and re-pin.
EXAMPLE_IDENTITY = "8e5c64c0a309fce507de9a5fcba81101e39ea723daac1439f292edd75c344fff"
EXAMPLE_CHECKSUM = "92bf9cabc1d2592159b0ca63bd336c5b46e3f761b136f6b3d7f25656b059eeb5"

# Every type, pooled (count > POOL_SIZE) and modifiers, to catch any source of process-local randomness.
MIXED = {
    "users": {"count": 1200, "seed": 7, "version": "3", "schema": {
        "id": "uuid", "name": "name unique", "email": "email unique", "phone": "phone nullable=0.1",
        "address": "address", "bio": "text max_chars=60", "age": "int:18..90", "score": "float:0..1",
        "balance": "decimal:0..9999", "active": "bool", "born": "date:1950-01-01..2005-12-31",
        "created_at": "timestamp", "tier": "enum:free=6,pro=3,team=1", "code": r"pattern:[A-Z]{2}-\d{5} unique",
        "company": "faker:company", "prefs": {"type": "json", "schema": {"dark": "bool", "lang": "enum:en,de"}},
        "handle": "template:{name|first|lower}_{age}"}},
    "orders": {"count": 1, "seed": 7, "schema": {"id": "uuid", "user_id": "ref:users.id per_parent=0-3",
                                                 "amount": "decimal:1..500", "coupon": "ref:users.code nullable"}},
}

_PROBE = """
import json, sys
from testpilot.testdata import DatasetConfig, dataset_identity, generate, rows_checksum
raw = json.loads(sys.argv[1])
datasets = {name: DatasetConfig.model_validate(cfg) for name, cfg in raw.items()}
print(json.dumps([dataset_identity(datasets), rows_checksum(generate(datasets))]))
"""


def _in_fresh_process(raw: dict, hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(raw)], capture_output=True, text=True,  # noqa: S603
                         env=env, check=True, timeout=120)
    return json.loads(out.stdout)


def _datasets(raw: dict) -> dict[str, DatasetConfig]:
    return {name: DatasetConfig.model_validate(cfg) for name, cfg in raw.items()}


def test_example_identity_and_rows_are_pinned(example):
    assert dataset_identity(example) == EXAMPLE_IDENTITY
    assert rows_checksum(generate(example)) == EXAMPLE_CHECKSUM


def test_two_processes_with_different_hash_seeds_give_identical_rows():
    here = _datasets(MIXED)
    expected = [dataset_identity(here), rows_checksum(generate(here))]
    assert _in_fresh_process(MIXED, "1") == expected
    assert _in_fresh_process(MIXED, "4242") == expected


def test_seed_and_version_change_the_data():
    base = rows_checksum(generate(_datasets(MIXED)))
    for key, value in (("seed", 8), ("version", "4")):
        changed = json.loads(json.dumps(MIXED))
        changed["users"][key] = value
        assert rows_checksum(generate(_datasets(changed))) != base
        assert dataset_identity(_datasets(changed)) != dataset_identity(_datasets(MIXED))


def test_targets_do_not_change_identity(example):
    retargeted = dict(example)
    retargeted["users"] = example["users"].model_copy(update={"targets": ["users_app"]})
    assert dataset_identity(retargeted) == dataset_identity(example)
