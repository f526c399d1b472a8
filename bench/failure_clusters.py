"""Clustering quality on seeded bugs in real projects: one cluster per cause?

    uv run python bench/seeded_failures.py      # first: build the set (JUnit files outside the repository)
    uv run python bench/failure_clusters.py

A failure's true cause is its seeded bug. Three clusterings are scored side by side in the same process:
``analyse_failures`` (crash point + message template, joined where failures meet in one function), "group by
exception type" and "exact first message line", under three protocols: each bug's run analysed on its own
(what the pipeline does: one run, one analysis), three bugs of one project landing in one run (purity then
says whether causes are kept apart), and every bug of a project in one run (a stress case). Tests that
already failed before any bug was seeded are left out.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from seeded_failures import CACHE  # noqa: E402

from testpilot.execution.junit import parse_junit  # noqa: E402
from testpilot.failures.analysis import analyse_failures  # noqa: E402
from testpilot.failures.config import FailuresConfig  # noqa: E402
from testpilot.failures.metrics import adjusted_rand_index, inverse_purity, purity  # noqa: E402
from testpilot.failures.model import FailureAnalysis  # noqa: E402
from testpilot.failures.records import FailureRecord, record_from_result  # noqa: E402


def load(junit_dir: Path) -> tuple[list[FailureRecord], list[str]]:
    manifest = json.loads((junit_dir / "manifest.json").read_text())
    baseline_failures = {project: {r.node_id for r in parse_junit(junit_dir / name, app=project) if r.failed}
                         for project, name in manifest["baselines"].items()}
    records, truth = [], []
    for mutant in manifest["mutants"]:
        project = mutant["project"]
        for result in parse_junit(junit_dir / mutant["junit"], app=project):
            if result.failed and result.node_id not in baseline_failures[project]:
                records.append(record_from_result(result))
                truth.append(f"{project}:{mutant['mutant']}")
    return records, truth


def scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    return {"ARI": adjusted_rand_index(truth, predicted), "purity": purity(truth, predicted),
            "inverse purity": inverse_purity(truth, predicted), "clusters": float(len(set(predicted)))}


def runs_of(truth: list[str], together: int, seed: int = 1) -> list[list[int]]:
    """Failure indices per simulated run: ``together`` seeded bugs of one project land in one run
    (0: all of a project's bugs at once). Bugs are grouped in a seeded random order."""
    bugs = sorted(set(truth))
    random.Random(seed).shuffle(bugs)
    by_project: dict[str, list[str]] = {}
    for bug in bugs:
        by_project.setdefault(bug.split(":", 1)[0], []).append(bug)
    run_of = {bug: f"{project}#{j // together if together else 0}"
              for project, members in by_project.items() for j, bug in enumerate(members)}
    runs: dict[str, list[int]] = {}
    for i, bug in enumerate(truth):
        runs.setdefault(run_of[bug], []).append(i)
    return list(runs.values())


def cluster_runs(records: list[FailureRecord], runs: list[list[int]]) -> tuple[list[str], list[str], list[str],
                                                                                  FailureAnalysis]:
    """Each run analysed on its own, as the pipeline does; clusters never span runs. Returns testpilot's,
    the exception-type baseline's and the first-line baseline's labels, and the last analysis."""
    ours, by_type, by_line = [""] * len(records), [""] * len(records), [""] * len(records)
    analysis = FailureAnalysis()
    for n, idx in enumerate(runs):
        analysis = analyse_failures([records[i] for i in idx], FailuresConfig(), run_id=f"run{n}")
        for i, verdict in zip(idx, analysis.tests, strict=True):
            r = records[i]
            ours[i] = f"{n}|{verdict.cluster}"
            by_type[i] = f"{n}|{r.exception_type.rsplit('.', 1)[-1] or '-'}"
            by_line[i] = f"{n}|{r.exception_type}: {r.message.strip().split(chr(10), 1)[0]}"
    return ours, by_type, by_line, analysis


PROTOCOLS = ((1, "each seeded bug's run analysed on its own (as the pipeline analyses one run)"),
             (3, "three bugs of one project land in one run"),
             (0, "stress: all of a project's bugs in one run"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, default=CACHE / "junit")
    parser.add_argument("--show", type=int, default=0, help="print the N most split causes (first protocol)")
    args = parser.parse_args()
    records, truth = load(args.junit)
    causes = len(set(truth))
    projects = Counter(t.split(":", 1)[0] for t in dict.fromkeys(truth))
    print(f"{len(records)} failures from {causes} seeded bugs in {len(projects)} projects "
          f"({', '.join(f'{p}: {n}' for p, n in sorted(projects.items()))})")
    for together, title in PROTOCOLS:
        # Which bugs share a run is drawn at random: for three per run, five draws (seeds 1-5), mean and range.
        seeds = range(1, 6) if together > 1 else range(1, 2)
        table: dict[str, list[dict[str, float]]] = {}
        took = 0.0
        for seed in seeds:
            runs = runs_of(truth, together, seed=seed)
            start = time.perf_counter()
            ours_seed, by_type, by_line, _ = cluster_runs(records, runs)
            took += time.perf_counter() - start
            if seed == 1:
                ours = ours_seed
            for name, predicted in (("testpilot (crash point + template)", ours_seed),
                                    ("group by exception type", by_type), ("exact first message line", by_line)):
                table.setdefault(name, []).append(scores(truth, predicted))
        draws = f", {len(seeds)} draws of which bugs share a run (mean [min-max])" if len(seeds) > 1 else ""
        print(f"\n{title}: {len(runs)} runs{draws}, analysed in {took / len(seeds):.2f} s")
        print(f"  {'clustering':<34} {'ARI':>19} {'purity':>19} {'inv.purity':>10} {'clusters':>9}")
        for name, rows in table.items():
            cells = []
            for metric in ("ARI", "purity"):
                values = [r[metric] for r in rows]
                spread = f" [{min(values):.3f}-{max(values):.3f}]" if len(values) > 1 else ""
                cells.append(f"{statistics.mean(values):.3f}{spread}")
            print(f"  {name:<34} {cells[0]:>19} {cells[1]:>19} "
                  f"{statistics.mean(r['inverse purity'] for r in rows):>10.3f} "
                  f"{int(statistics.mean(r['clusters'] for r in rows)):>9}")
        if together == 1:
            for project in sorted(projects):
                idx = [i for i, t in enumerate(truth) if t.startswith(project + ":")]
                s = scores([truth[i] for i in idx], [ours[i] for i in idx])
                print(f"    {project:<20} failures {len(idx):>5}  ARI {s['ARI']:.3f}  purity {s['purity']:.3f}  "
                      f"inverse purity {s['inverse purity']:.3f}")
            if args.show:
                split = Counter({t: len({ours[i] for i, x in enumerate(truth) if x == t}) for t in set(truth)})
                for cause, n in split.most_common(args.show):
                    seen = Counter(ours[i] for i, x in enumerate(truth) if x == cause)
                    print(f"    {cause}: {n} clusters, sizes {sorted(seen.values(), reverse=True)[:8]}")


if __name__ == "__main__":
    main()
