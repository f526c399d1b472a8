"""Loading the real corpus and making variants of its failures with the volatile parts changed.

Used by the clustering test and by bench/failures.py: a variant is the same cause seen again with other
ports, addresses, numbers, temp paths and test names, as it would be in another run or another test.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from testpilot.failures.records import FailureRecord, record_from_result
from testpilot.results import TestResult

CORPUS = Path(__file__).resolve().parent / "corpus" / "corpus.json"

_HEX = re.compile(r"0x[0-9a-f]{6,}")
_PORT = re.compile(r"(?<=port=)\d+|(?<=port )\d+|(?<=127\.0\.0\.1:)\d+")
_TMP = re.compile(r"/tmp/[\w.-]+")
_ASSERT_NUM = re.compile(r"(?<=assert )-?\d+(?:\.\d+)?|(?<=== )-?\d+(?:\.\d+)?|(?<=got )-?\d+")
_LINE = re.compile(r"(?<=\.py:)\d+(?=:)")


def load_corpus() -> list[dict[str, Any]]:
    return json.loads(CORPUS.read_text())


def entry_record(entry: dict[str, Any]) -> FailureRecord:
    if entry["source"] == "pytest":
        return record_from_result(TestResult(**entry["result"]), entry.get("reruns", []))
    return FailureRecord(**entry["record"])


def _swap(pattern: re.Pattern[str], text: str, make: Any) -> str:
    return pattern.sub(lambda m: make(), text)


def vary(record: FailureRecord, rng: random.Random, *, test_id: str | None = None,
         test_file: str | None = None) -> FailureRecord:
    """The same failure with new volatile details; optionally another test id and test file."""
    port = str(rng.randint(1025, 65000))
    tmp = f"/tmp/pytest-of-ci/pytest-{rng.randint(1, 999)}/run{rng.randint(0, 99999)}"
    numbers: dict[str, str] = {}

    def number(m: re.Match[str]) -> str:
        return numbers.setdefault(m.group(0), str(round(rng.uniform(-500, 500), rng.choice((0, 2)))))

    def change(text: str) -> str:
        text = _swap(_HEX, text, lambda: hex(rng.getrandbits(44)))
        text = _PORT.sub(port, text)
        text = _TMP.sub(tmp, text)
        text = _ASSERT_NUM.sub(number, text)
        return _LINE.sub(lambda m: str(max(1, int(m.group(0)) + rng.randint(-3, 3))), text)

    old_file = record.test_file
    trace = change(record.traceback)
    if test_file and old_file:
        trace = trace.replace(old_file, test_file)
    return record.model_copy(update={
        "message": change(record.message), "traceback": trace, "output": change(record.output),
        "test_id": test_id or record.test_id, "duration": round(rng.uniform(0.01, 30), 3),
    })
