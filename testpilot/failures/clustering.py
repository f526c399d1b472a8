"""Grouping signatures into clusters: exact keys first, then near-duplicates by token-set (Jaccard) similarity.

Near-duplicates are found with an inverted index and prefix filtering (Bayardo et al., "Scaling up all pairs
similarity search", 2007): if two sets reach Jaccard ``t``, their first ``|x| - ceil(t*|x|) + 1`` tokens under
one global order must share a token, so each signature is compared only with the few leaders sharing a rare
prefix token. Hand-written (about 60 lines) rather than MinHash/LSH from datasketch because it is exact and
deterministic: the same failures always give the same clusters, which the cross-run matching relies on.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence

from testpilot.failures.signature import Signature


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _prefix_len(size: int, threshold: float) -> int:
    return max(1, size - math.ceil(threshold * size - 1e-9) + 1)


class SimilarityIndex:
    """Token sets by id; finds the most similar set above a threshold, or the nearest set at all."""

    def __init__(self, threshold: float, rank: Callable[[str], tuple[int, str]] | None = None) -> None:
        self.threshold = threshold
        self._rank = rank or (lambda token: (0, token))
        self._prefix: dict[str, list[Hashable]] = defaultdict(list)
        self._all: dict[str, list[Hashable]] = defaultdict(list)
        self._sets: dict[Hashable, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def _ordered(self, tokens: Iterable[str]) -> list[str]:
        return sorted(tokens, key=self._rank)

    def add(self, item: Hashable, tokens: frozenset[str]) -> None:
        self._sets[item] = tokens
        ordered = self._ordered(tokens)
        for token in ordered[:_prefix_len(len(ordered), self.threshold)]:
            self._prefix[token].append(item)
        for token in ordered:
            self._all[token].append(item)

    def best(self, tokens: frozenset[str]) -> tuple[Hashable, float] | None:
        """The most similar indexed set with similarity >= threshold (ties: first added)."""
        size = len(tokens)
        low, high = self.threshold * size, size / self.threshold
        seen: set[Hashable] = set()
        found: tuple[Hashable, float] | None = None
        for token in self._ordered(tokens)[:_prefix_len(size, self.threshold)]:
            for item in self._prefix.get(token, ()):
                if item in seen:
                    continue
                seen.add(item)
                other = self._sets[item]
                if not low - 1e-9 <= len(other) <= high + 1e-9:
                    continue
                sim = jaccard(tokens, other)
                if sim >= self.threshold - 1e-9 and (found is None or sim > found[1]):
                    found = (item, sim)
        return found

    def nearest(self, tokens: frozenset[str], exclude: Hashable | None = None) -> tuple[Hashable, float] | None:
        """The most similar indexed set sharing any token, however low the similarity."""
        candidates: set[Hashable] = set()
        for token in tokens:
            candidates.update(self._all.get(token, ()))
        candidates.discard(exclude)
        scored = [(item, jaccard(tokens, self._sets[item])) for item in candidates]
        return max(scored, key=lambda pair: (pair[1], -_order(pair[0])), default=None)


def _order(item: Hashable) -> int:
    return item if isinstance(item, int) else 0


def cluster_signatures(signatures: Sequence[Signature], threshold: float) -> list[list[int]]:
    """Indices of ``signatures`` grouped into clusters, biggest first; each group starts with its leader.

    Identical keys always share a cluster. Distinct keys join the most similar leader at or above
    ``threshold``; the most frequent signatures become leaders first, so a cluster is named after its
    common form, not a stray variant.
    """
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, sig in enumerate(signatures):
        by_key[sig.key].append(i)
    uniques = sorted(by_key, key=lambda k: (-len(by_key[k]), k))
    doc_freq: Counter[str] = Counter()
    for key in uniques:
        doc_freq.update(signatures[by_key[key][0]].tokens)
    index = SimilarityIndex(threshold, rank=lambda token: (doc_freq.get(token, 0), token))
    groups: list[list[int]] = []
    for key in uniques:
        members = by_key[key]
        tokens = signatures[members[0]].tokens
        match = index.best(tokens)
        if match is None:
            index.add(len(groups), tokens)
            groups.append(list(members))
        else:
            groups[int(match[0])].extend(members)  # type: ignore[call-overload]
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups
