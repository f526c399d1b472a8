from __future__ import annotations

import random
import re
import uuid

import pytest

from testpilot.failures.analysis import analyse_failures, categorise_and_sign
from testpilot.failures.clustering import SimilarityIndex, cluster_signatures, jaccard
from testpilot.failures.config import FailuresConfig

from .variants import entry_record, load_corpus, vary

# Real failures from the corpus, each standing for one root cause: (node id prefix, spread over test files?)
CAUSES = {
    "postgres down": ("tests/test_env.py::test_postgres_refused", True),
    "vat table missing a country": ("tests/test_product.py::test_vat_for_country", True),
    "cart rejects quantity": ("tests/test_product.py::test_cart_accepts_quantity", True),
    "seed data duplicates": ("tests/test_data.py::test_uses_seeded_customers", False),
    "test hangs": ("tests/test_timeout.py::test_hangs_forever", True),
    "discount applied twice": ("tests/test_product.py::test_total_with_discount", False),
    "disk full": ("tests/test_env.py::test_disk_full[", True),
    "ssh drops": ("tests/test_env.py::test_ssh_connection_dropped", True),
}
PER_CAUSE = 30


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def _failures(corpus, rng):
    records, truth = [], {}
    for cause, (prefix, spread) in CAUSES.items():
        originals = [entry_record(e) for e in corpus if e["id"].startswith(prefix)]
        assert originals, prefix
        for i in range(PER_CAUSE):
            base = originals[i % len(originals)]
            test_file = f"tests/test_{rng.choice(['orders', 'stock', 'users', 'billing'])}.py" if spread else None
            test_id = f"{test_file or base.test_file}::test_{cause.replace(' ', '_')}_{i}[{rng.randint(0, 9999)}]"
            record = vary(base, rng, test_id=test_id, test_file=test_file)
            if "KeyError" in record.exception_type:  # a different missing key each time
                code = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(2))
                record = record.model_copy(update={"message": f"'{code}'",
                                                   "traceback": re.sub(r"KeyError: '\w+'", f"KeyError: '{code}'",
                                                                       record.traceback)})
            if cause == "postgres down":  # as a service log would prefix it
                stamp = f"2026-11-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:07.{i}Z"
                record = record.model_copy(update={
                    "message": f"[{stamp}] request {uuid.UUID(int=rng.getrandbits(128))}: {record.message}"})
            records.append(record)
            truth[test_id] = cause
    rng.shuffle(records)
    return records, truth


@pytest.mark.parametrize("similarity", [0.8, 1.0])  # 1.0: signatures alone, no near-duplicate joining
def test_each_root_cause_comes_back_as_exactly_one_cluster(corpus, similarity):
    records, truth = _failures(corpus, random.Random(7))
    analysis = analyse_failures(records, FailuresConfig(similarity=similarity), run_id="run-1")
    found = [{truth[t] for t in c.tests} for c in analysis.clusters]
    assert all(len(causes) == 1 for causes in found), found
    assert sorted(next(iter(c)) for c in found) == sorted(CAUSES)
    assert all(c.count == PER_CAUSE for c in analysis.clusters)


def test_near_duplicates_join_and_threshold_is_respected(corpus):
    # Two messages of one cause that normalisation cannot make identical: a host name differs.
    base = next(entry_record(e) for e in corpus if "test_postgres_refused" in e["id"])
    other = base.model_copy(update={"test_id": "tests/test_x.py::test_y",
                                    "message": base.message.replace("connection failed", "connection failed (db-2)")})
    cats, sigs = categorise_and_sign([base, other])
    assert sigs[0].key != sigs[1].key
    similarity = jaccard(sigs[0].tokens, sigs[1].tokens)
    assert len(cluster_signatures(sigs, threshold=similarity)) == 1
    assert len(cluster_signatures(sigs, threshold=min(1.0, similarity + 0.01))) == 2


def test_index_finds_the_same_best_match_as_brute_force():
    rng = random.Random(3)
    vocab = [f"t{i}" for i in range(60)]
    sets = [frozenset(rng.sample(vocab, rng.randint(1, 15))) for _ in range(300)]
    for threshold in (0.3, 0.6, 0.8, 1.0):
        index = SimilarityIndex(threshold)
        for i, s in enumerate(sets[:200]):
            index.add(i, s)
        for probe in sets[200:]:
            brute = max((jaccard(probe, s) for s in sets[:200]), default=0.0)
            found = index.best(probe)
            if brute >= threshold:
                assert found is not None and found[1] == pytest.approx(brute)
            else:
                assert found is None
