"""Category accuracy on the labelled corpora of real failures, without and with re-run and history evidence.

    uv run python tests/failures/make_corpus2.py      # optional: re-collect the second corpus (a few minutes)
    uv run python bench/failure_categories.py

Corpora: ``tests/failures/corpus2`` (a shop with real faults, 8 categories, each failure with its re-run
outcome and its history of earlier runs; see make_corpus2.py) and the original ``tests/failures/corpus``.
Three evidence levels are scored in the same process: the failure alone, plus one automatic re-run
(``failures.reruns: 1``, the default), plus the test's own history of earlier runs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testpilot.failures.analysis import analyse_failures  # noqa: E402
from testpilot.failures.records import FailureRecord, record_from_result  # noqa: E402
from testpilot.results import TestResult  # noqa: E402

CORPORA = {"corpus2 (this benchmark's)": ROOT / "tests/failures/corpus2/corpus.json",
           "corpus (original)": ROOT / "tests/failures/corpus/corpus.json"}
LEVELS = ("failure alone", "+ one re-run", "+ re-run + history")


def record(entry: dict[str, Any], level: str) -> FailureRecord:
    reruns = entry.get("reruns", []) if level != "failure alone" else []
    if entry.get("source", "pytest") == "pytest":
        rec = record_from_result(TestResult(**entry["result"]), reruns)
    else:
        rec = FailureRecord(**entry["record"]).model_copy(update={"rerun_outcomes": reruns})
    history = entry.get("history", []) if level == "+ re-run + history" else []
    return rec.model_copy(update={"history": history})


def score(entries: list[dict[str, Any]], level: str) -> tuple[float, Counter[str], Counter[str], list[str]]:
    """Each run's failures analysed together, as the pipeline does (ids ``runN:...``; an id without a run
    prefix belongs to one run), scored on each test's own category."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        run = e["id"].split(":", 1)[0] if e["id"].startswith("run") else "run"
        runs.setdefault(run, []).append(e)
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misses = []
    for run_entries in runs.values():
        analysis = analyse_failures([record(e, level) for e in run_entries])
        for e, got in zip(run_entries, analysis.tests, strict=True):
            total[e["expected"]] += 1
            if got.category == e["expected"]:
                right[e["expected"]] += 1
            else:
                misses.append(f"{e['id'][:80]}: {e['expected']} -> {got.category} ({got.evidence[:70]})")
    return sum(right.values()) / len(entries), right, total, misses


def main() -> None:
    show = "--misses" in sys.argv
    for name, path in CORPORA.items():
        entries = json.loads(path.read_text())
        labels = Counter(e["expected"] for e in entries)
        print(f"{name}: {len(entries)} failures; " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())))
        for level in LEVELS:
            accuracy, right, total, misses = score(entries, level)
            flaky = f"{right['flaky'] / total['flaky']:.2f}" if total["flaky"] else "-"
            recalls = ", ".join(f"{c} {right[c]}/{n}" for c, n in sorted(total.items()))
            print(f"  {level:<20} accuracy {accuracy:.3f}  flaky recall {flaky}  ({recalls})")
            if show and level != LEVELS[0]:
                print("\n".join(f"    miss: {m}" for m in misses))
        print()


if __name__ == "__main__":
    main()
