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

from testpilot.failures.signature import TEST_CODE, Signature


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

    Identical keys always share a cluster. A distinct key joins the most similar leader at or above
    ``threshold`` only within its bucket (same exception type at the same crash point): messages that
    look alike at different crash points are different causes. The most frequent signatures become
    leaders first, so a cluster is named after its common form, not a stray variant.
    """
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, sig in enumerate(signatures):
        by_key[sig.key].append(i)
    buckets: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in sorted(by_key, key=lambda k: (-len(by_key[k]), k)):
        buckets[signatures[by_key[key][0]].bucket].append(key)
    groups: list[list[int]] = []
    in_tests: dict[str, list[int]] = {}
    for (exc, point), keys in buckets.items():
        if point == TEST_CODE:  # the test's own check failed: its message is only data
            in_tests[exc] = [i for key in keys for i in by_key[key]]
            continue
        if len(keys) == 1:
            groups.append(list(by_key[keys[0]]))
            continue
        doc_freq: Counter[str] = Counter()
        for key in keys:
            doc_freq.update(signatures[by_key[key][0]].tokens)
        index = SimilarityIndex(threshold, rank=_rarest_first(doc_freq))
        local: list[list[int]] = []
        for key in keys:
            members = by_key[key]
            tokens = signatures[members[0]].tokens
            match = index.best(tokens)
            if match is None:
                index.add(len(local), tokens)
                local.append(list(members))
            else:
                local[int(match[0])].extend(members)  # type: ignore[call-overload]
        groups.extend(local)
    groups = join_meeting(groups, signatures)
    groups.extend(_tests_by_function(groups, in_tests, signatures))
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def _rarest_first(doc_freq: Counter[str]) -> Callable[[str], tuple[int, str]]:
    return lambda token: (doc_freq.get(token, 0), token)


def _tests_by_function(groups: list[list[int]], in_tests: dict[str, list[int]],
                       signatures: Sequence[Signature]) -> list[list[int]]:
    """Failures whose only project code is the test (its own check failed), per exception type and the
    function the failing line called: each such group joins the cluster crashing in that function (the
    function under test), so two bugs' failed checks go to their own bugs' clusters. The rest of one
    exception type (their functions crashed nowhere in this run, or the line names none) are one cluster:
    one wrong value fails checks on many functions, and splitting them by function split single causes
    (bench/failure_clusters.py). Only one join, so shared helpers cannot chain causes together."""
    where: dict[str, int] = {}  # bare function name -> the biggest cluster crashing in it
    for g, members in enumerate(groups):
        for name in sorted({n for i in members for n in signatures[i].meets}):
            where.setdefault(name, g)
    rest: list[list[int]] = []
    for exc in sorted(in_tests):
        by_callee: dict[str, list[int]] = defaultdict(list)
        for i in in_tests[exc]:
            by_callee[min(signatures[i].meets, default="")].append(i)
        alone: list[int] = []
        for _callee, members in sorted(by_callee.items()):
            hits = Counter(where[n] for i in members for n in signatures[i].meets if n in where)
            if hits:
                target = min(hits, key=lambda g: (-hits[g], g))
                groups[target].extend(members)
            else:
                alone.extend(members)
        if alone:
            rest.append(alone)
    return rest



def join_meeting(groups: list[list[int]], signatures: Sequence[Signature]) -> list[list[int]]:
    """Join clusters whose failures meet in the same function (see ``meeting_functions``): one faulty
    function fails tests through different callers, exception types and messages. Union-find over the
    function names, biggest clusters first, so the join is deterministic."""
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for g, members in enumerate(sorted(groups, key=lambda m: (-len(m), m[0]))):
        for name in sorted({n for i in members for n in signatures[i].meets}):
            if name in owner:
                a, b = root(owner[name]), root(g)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[name] = g
    ordered = sorted(groups, key=lambda m: (-len(m), m[0]))
    joined: dict[int, list[int]] = {}
    for g, members in enumerate(ordered):
        joined.setdefault(root(g), []).extend(members)
    return list(joined.values())
