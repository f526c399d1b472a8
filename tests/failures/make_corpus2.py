"""Collect the second labelled corpus by running the shop in ``corpus2_project.py`` for real.

    uv run python tests/failures/make_corpus2.py          # writes tests/failures/corpus2/corpus.json (2-3 min)

The project is written to a temporary folder and its suite run with pytest's default JUnit (xunit2) several
times: 6 runs make each test's history, then 4 analysed runs, each followed by one re-run of its failed tests
(as the pipeline does with ``failures.reruns: 1``). Every failure of the first analysed run goes in; from
the others only the flaky tests' failures (a flaky test fails in some runs only, so one run shows few).
Each entry keeps the parsed TestResult, its re-run outcome, its history (oldest first) and the category its
fault was written to show.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from corpus2_project import FILES, LABELS  # noqa: E402

from testpilot.execution.junit import parse_junit  # noqa: E402
from testpilot.results import TestResult  # noqa: E402

OUT = HERE / "corpus2" / "corpus.json"
MAX_TRACE = 4000  # the tail holds the exception and the innermost frames
HISTORY_RUNS, ANALYSED_RUNS = 6, 4


def label_of(node_id: str) -> str:
    return LABELS.get(node_id) or LABELS.get(node_id.split("[", 1)[0], "")


def run(root: Path, junit: Path, tests: list[str] | None = None) -> list[TestResult]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--continue-on-collection-errors", f"--junitxml={junit}", *(tests or ["tests"])]
    subprocess.run(cmd, cwd=root, capture_output=True, timeout=600,  # noqa: S603
                   env={**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"})
    return parse_junit(junit, app="shop", environment="local", host="127.0.0.1")


_LOCATION = re.compile(r"^(\S.*?\.py):\d+: ")
_SEPARATOR = re.compile(r"^(?:_ ){10,}_?\s*$")


def without_library_source(traceback: str) -> str:
    """pytest's long format lists the whole source of every frame; of installed-library and standard-library
    frames keep only the failing line, the E lines and the location, so no third-party code is stored."""
    out: list[str] = []
    block: list[str] = []
    for line in [*traceback.splitlines(), "_ " * 20]:
        if _SEPARATOR.match(line):
            where = next((m.group(1) for m in map(_LOCATION.match, reversed(block)) if m), "")
            library = any(mark in where for mark in ("site-packages", "/lib/python3", "<frozen"))
            out.extend(x for x in block if not library or x.startswith((">", "E ")) or _LOCATION.match(x))
            out.append(line)
            block = []
        else:
            block.append(line)
    return "\n".join(out[:-1])


def shrink(result: TestResult, root: Path) -> dict[str, object]:
    data = result.model_dump()
    data["traceback"] = without_library_source(str(data["traceback"]))
    for key in ("traceback", "stdout", "stderr", "message"):
        text = str(data[key]).replace(str(root), "/home/ci/shop").replace(sys.prefix, "/home/ci/venv")
        data[key] = text.replace(sys.base_prefix, "/usr/local")[-MAX_TRACE:]
    return data


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="corpus2-") as tmp:
        root = Path(tmp) / "shop"
        for rel, text in FILES.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        history: dict[str, list[str]] = {}
        for i in range(HISTORY_RUNS):
            for r in run(root, Path(tmp) / f"h{i}.xml"):
                history.setdefault(r.node_id, []).append(r.outcome)
            print(f"history run {i + 1}/{HISTORY_RUNS}", flush=True)
        entries = []
        for i in range(ANALYSED_RUNS):
            results = run(root, Path(tmp) / f"a{i}.xml")
            failed = [r for r in results if r.failed]
            rerun: dict[str, str] = {}
            for n, file in enumerate(sorted({r.node_id.split("::", 1)[0] for r in failed})):
                # One session per test file: a session that dies (a hung socket, a killed worker) then
                # loses the re-runs of one file, not of every file after it.
                ids = [r.node_id for r in failed if r.node_id.split("::", 1)[0] == file]
                rerun.update({r.node_id: r.outcome for r in run(root, Path(tmp) / f"r{i}-{n}.xml", ids)})
            for r in failed:
                expected = label_of(r.node_id)
                if not expected:  # e.g. pytest's own "internal" error entry: not a test's failure
                    print(f"skipped unlabelled {r.node_id}: {r.message[:300]!r}", flush=True)
                    continue
                if i == 0 or expected == "flaky":
                    entries.append({"id": f"run{i + 1}:{r.node_id}", "expected": expected,
                                    "result": shrink(r, root), "reruns": [rerun.get(r.node_id, r.outcome)],
                                    "history": list(history.get(r.node_id, []))})
            for r in results:
                history.setdefault(r.node_id, []).append(r.outcome)
            print(f"analysed run {i + 1}/{ANALYSED_RUNS}: {len(failed)} failures", flush=True)
    missing = sorted(n for n in LABELS if not any(e["id"].split(":", 1)[1].split("[", 1)[0] == n for e in entries))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("[\n" + ",\n".join(json.dumps(e, sort_keys=True) for e in entries) + "\n]\n")
    print(f"{len(entries)} failures -> {OUT}; labelled tests that never failed: {missing or 'none'}")


if __name__ == "__main__":
    main()
