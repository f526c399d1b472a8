"""Scores of a clustering against the true causes: adjusted Rand index, purity and inverse purity.

Hand-written (a few lines over a contingency table) rather than adding scikit-learn, a large dependency, for
one formula; ``tests/failures/test_metrics.py`` checks it against values from scikit-learn's documentation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb


def adjusted_rand_index(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Hubert and Arabie's adjusted Rand index: 1 for identical partitions, about 0 for random ones."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must label the same items")
    n = len(truth)
    pairs = Counter(zip(truth, predicted, strict=True))
    index = sum(comb(c, 2) for c in pairs.values())
    rows = sum(comb(c, 2) for c in Counter(truth).values())
    cols = sum(comb(c, 2) for c in Counter(predicted).values())
    total = comb(n, 2)
    if total == 0:
        return 1.0
    expected = rows * cols / total
    maximum = (rows + cols) / 2
    if maximum == expected:  # both partitions trivial (all singletons or one cluster): identical
        return 1.0
    return (index - expected) / (maximum - expected)


def purity(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of items whose cluster's majority cause is their own cause."""
    if not truth:
        return 1.0
    by_cluster: dict[Hashable, Counter[Hashable]] = {}
    for t, p in zip(truth, predicted, strict=True):
        by_cluster.setdefault(p, Counter())[t] += 1
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / len(truth)


def inverse_purity(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of items in their cause's biggest cluster: low when one cause is split into many clusters."""
    return purity(predicted, truth)
