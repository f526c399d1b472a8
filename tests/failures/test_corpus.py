"""Categorisation accuracy on the labelled corpus of real failures (tests/failures/corpus, make_corpus.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from testpilot.failures.categories import Categoriser
from testpilot.failures.config import FailuresConfig

from .variants import entry_record, load_corpus

BUILTINS = ("product_bug", "test_bug", "environment", "timeout", "test_data", "dependency", "authentication",
            "flaky")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_corpus_is_big_and_real(corpus):
    assert len(corpus) >= 150
    labels = Counter(e["expected"] for e in corpus)
    for category in BUILTINS:
        assert labels[category] >= 5, f"too few {category} examples: {labels}"
    for e in corpus:
        record = entry_record(e)
        assert record.traceback, e["id"]  # collected from a real run, not written by hand
        assert record.exception_type or record.message, e["id"]


def test_categorisation_accuracy_at_least_95_percent(corpus):
    categoriser = Categoriser()
    misses = []
    per_category: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for e in corpus:
        got = categoriser.categorise(entry_record(e))
        per_category[e["expected"]] += 1
        if got.category == e["expected"]:
            right[e["expected"]] += 1
        else:
            misses.append((e["id"], e["expected"], got.category, got.evidence))
    accuracy = sum(right.values()) / len(corpus)
    breakdown = ", ".join(f"{c} {right[c]}/{n}" for c, n in sorted(per_category.items()))
    print(f"\ncorpus categorisation accuracy: {accuracy:.1%} ({sum(right.values())}/{len(corpus)}); {breakdown}")
    assert accuracy >= 0.95, misses


@pytest.mark.parametrize("category", BUILTINS)
def test_each_builtin_category_is_recognised_on_real_failures(corpus, category):
    categoriser = Categoriser()
    examples = [e for e in corpus if e["expected"] == category]
    hits = sum(categoriser.categorise(entry_record(e)).category == category for e in examples)
    assert hits / len(examples) >= 0.9, f"{category}: {hits}/{len(examples)}"


def test_suite_example_categories_keep_working(corpus):
    # The categories of the seed example: configured rules come first and take the failures they name.
    config = FailuresConfig.model_validate({
        "categories": [
            {"name": "database_connection", "patterns": ["ConnectionError", "database is unreachable"]},
            {"name": "authentication", "patterns": ["Unauthorized", "Invalid token", "Authentication failed"]},
            {"name": "validation", "patterns": ["ValidationError", "invalid input", "required field"]},
            {"name": "integration", "patterns": ["service unavailable", "timeout waiting for response"]},
        ],
        "routing": {"database_connection": "database-team", "authentication": "security-team"},
    })
    categoriser = Categoriser(config)
    got = {e["id"]: categoriser.categorise(entry_record(e)) for e in corpus}
    refused = [g for i, g in got.items() if i.startswith("tests/test_env.py::test_requests_refused")]
    assert refused and all(g.category == "database_connection" for g in refused)
    assert all(g.defect_type == "system" for g in refused)  # inferred from the built-in rules
    unauthorised = [g for i, g in got.items() if i.startswith("tests/test_auth.py::test_api_requires_token")]
    assert unauthorised and all(g.category == "authentication" and g.rule == "config:authentication"
                                for g in unauthorised)
    unavailable = [g for i, g in got.items() if i.startswith("tests/test_env.py::test_service_unavailable")]
    assert unavailable and all(g.category == "integration" for g in unavailable)
    # Failures no configured rule names still get their built-in category.
    disk = [g for i, g in got.items() if i.startswith("tests/test_env.py::test_disk_full")]
    assert disk and all(g.category == "environment" for g in disk)
