"""Benchmark: categorise and cluster 10,000 failures built from the real corpus with volatile parts varied.

    uv run python bench/failures.py

Prints medians of the indexed pipeline (analyse_failures: categorise, sign, cluster, suggest, route) and
the naive way: comparing every pair of failures by token-set similarity. The naive run over all 50M pairs
would take minutes, so a sample of rows is timed against all 10,000 and extrapolated (it says so).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from failures.variants import entry_record, load_corpus, vary  # noqa: E402

from testpilot.failures.analysis import analyse_failures, categorise_and_sign  # noqa: E402
from testpilot.failures.clustering import cluster_signatures, jaccard  # noqa: E402
from testpilot.failures.config import FailuresConfig  # noqa: E402

N = 10_000
REPEATS = 5
NAIVE_ROWS = 150  # rows of the pairwise matrix timed; the rest is extrapolated
# The suite example's categories: configured regexes are searched in message, traceback and output.
EXAMPLE_RULES = FailuresConfig.model_validate({"categories": [
    {"name": "database_connection", "patterns": ["ConnectionError", "database is unreachable"]},
    {"name": "authentication", "patterns": ["Unauthorized", "Invalid token", "Authentication failed"]},
    {"name": "validation", "patterns": ["ValidationError", "invalid input", "required field"]},
    {"name": "integration", "patterns": ["service unavailable", "timeout waiting for response"]},
]})
FILES = ["orders", "stock", "users", "billing", "search", "cart", "auth", "reports"]


def build(n: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    originals = [entry_record(e) for e in load_corpus()]
    records = []
    for i in range(n):
        base = originals[i % len(originals)]
        test_file = f"tests/test_{rng.choice(FILES)}.py"
        records.append(vary(base, rng, test_id=f"{test_file}::test_{i}[{rng.randint(0, 99999)}]",
                            test_file=test_file if base.test_file else None))
    return records


def timed(fn, repeats: int = REPEATS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    records = build(N)
    config = FailuresConfig()
    total_s, analysis = timed(lambda: analyse_failures(records, config, run_id="bench"))
    rules_s, _ = timed(lambda: analyse_failures(records, EXAMPLE_RULES, run_id="bench"))
    sign_s, (_, sigs) = timed(lambda: categorise_and_sign(records, config))
    cluster_s, groups = timed(lambda: cluster_signatures(sigs, config.similarity))

    tokens = [s.tokens for s in sigs]
    sample_rng = random.Random(2)

    def naive_rows() -> int:
        joined = 0
        for i in sample_rng.sample(range(N), NAIVE_ROWS):
            a = tokens[i]
            joined += sum(1 for b in tokens if jaccard(a, b) >= config.similarity)
        return joined

    sample_s, _ = timed(naive_rows)
    pairs = N * (N - 1) / 2
    naive_cluster_s = sample_s / (NAIVE_ROWS * N) * pairs
    naive_total_s = sign_s + naive_cluster_s

    print(f"failures: {N} from {len(load_corpus())} real corpus failures, volatile parts varied")
    print(f"clusters: {len(analysis.clusters)} (flaky failures apart; "  # type: ignore[attr-defined]
          f"signature clustering alone gives {len(groups)})")
    print(f"indexed pipeline, analyse_failures end to end (median of {REPEATS}): {total_s:.2f} s "
          f"({total_s / N * 1e6:.0f} us per failure)")
    print(f"  same with the suite example's 4 configured categories: {rules_s:.2f} s")
    print(f"  categorise + sign: {sign_s:.2f} s; cluster (exact keys + prefix-filtered index): {cluster_s:.3f} s")
    print(f"naive pairwise comparison, {pairs / 1e6:.0f}M pairs: EXTRAPOLATED from {NAIVE_ROWS} rows x {N} "
          f"({NAIVE_ROWS * N / 1e6:.1f}M pairs in {sample_s:.2f} s, median of {REPEATS}): {naive_cluster_s:.0f} s to compare, "
          f"{naive_total_s:.0f} s with categorise + sign")
    print(f"ratio, clustering step: naive / indexed = {naive_cluster_s / cluster_s:,.0f}x")
    print(f"ratio, end to end:      naive / indexed = {naive_total_s / total_s:,.0f}x")
    print(f"budget 5 s: {'met' if max(total_s, rules_s) <= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
