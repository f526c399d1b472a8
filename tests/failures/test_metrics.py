"""The clustering scores against known values (scikit-learn's documented examples of adjusted_rand_score)."""

from __future__ import annotations

import pytest

from testpilot.failures.metrics import adjusted_rand_index, inverse_purity, purity


@pytest.mark.parametrize("truth,predicted,expected", [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
    ([0, 0, 1, 1], [1, 1, 0, 0], 1.0),  # label names do not matter
    ([0, 0, 1, 2], [0, 0, 1, 1], 0.571428571),
    ([0, 0, 1, 1], [0, 0, 1, 2], 0.571428571),
    ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),
    ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),
])
def test_adjusted_rand_index_known_values(truth, predicted, expected):
    assert adjusted_rand_index(truth, predicted) == pytest.approx(expected, abs=1e-6)


def test_purity_and_inverse_purity():
    truth = ["a", "a", "a", "b", "b", "c"]
    predicted = [1, 1, 2, 2, 2, 3]  # cluster 2 mixes a and b; cause a is split
    assert purity(truth, predicted) == pytest.approx(5 / 6)
    assert inverse_purity(truth, predicted) == pytest.approx(5 / 6)
    assert purity(truth, list(range(6))) == 1.0
    assert inverse_purity(truth, list(range(6))) == pytest.approx(3 / 6)


def test_lengths_must_match():
    with pytest.raises(ValueError):
        adjusted_rand_index([0, 1], [0])
