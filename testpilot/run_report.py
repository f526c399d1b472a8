"""The one page a person reads first: verdict and reason, failures, what did not run and why, scenarios,
selection, environments. Plain data in, markdown and one-line messages out (no Prefect here).

Counts come from the same result list JUnit is written from, so the state message, the summary and
junit.xml always agree; tests a node owed but never ran are in that list as ``skipped`` with the reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from testpilot.results import Selection, ShardResult, TestResult

NOT_RUN_PREFIX = "not run: "
_RANK = {"failed": 0, "error": 1, "skipped": 2, "passed": 3}


def not_run_results(app: str, shard: int, tests: Sequence[str], reason: str) -> list[TestResult]:
    """One skipped result per test a node owed and never ran, carrying why (a failed dependency...)."""
    return [TestResult(node_id=t, app=app, outcome="skipped", shard=shard, message=NOT_RUN_PREFIX + reason)
            for t in tests]


def failures_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result rows ordered failed, error, skipped, passed (stable within each)."""
    return sorted(rows, key=lambda r: _RANK.get(str(r.get("outcome")), 4))


def run_counts(shards: Sequence[ShardResult]) -> dict[str, int]:
    results = [r for s in shards for r in s.results]
    c = Counter(r.outcome for r in results)
    failed = sum(len(s.failures) for s in shards)
    return {"tests": len(results), "passed": c["passed"], "failed": failed,
            "errors": c["error"], "skipped": c["skipped"],
            "not_run": sum(1 for r in results if r.outcome == "skipped" and r.message.startswith(NOT_RUN_PREFIX)),
            "flaky": sum(1 for s in shards for r in s.results if s.rescued(r))}


def short(sha: str) -> str:
    return sha[:10] if sha else "working tree"


def verdict(counts: Mapping[str, int], failures: Sequence[Mapping[str, Any]],
            scenarios: Sequence[Mapping[str, Any]], not_run: Mapping[str, str]) -> tuple[bool, str]:
    """(passed, one-line reason) for the run's state message and the summary's first line."""
    failed_scen = [s["scenario"] for s in scenarios if s.get("verdict") == "failed"]
    passed = not counts["failed"] and not failed_scen
    parts = [f"{counts['failed']} of {counts['tests']} test(s) failed" if counts["failed"]
             else f"all {counts['passed']} run test(s) passed" if counts["tests"] else "no tests ran"]
    if failures:
        first = failures[0]
        parts[0] += (f": {first['app']} {first['node_id']} ({first['category']}, owner {first['owner']})"
                     + (f" and {len(failures) - 1} more" if len(failures) > 1 else ""))
    if counts["not_run"]:
        reasons = sorted(set(not_run.values()))
        parts.append(f"{counts['not_run']} not run ({'; '.join(reasons)[:160]})")
    if failed_scen:
        parts.append(f"scenario(s) failed: {', '.join(failed_scen)}")
    elif scenarios:
        parts.append(", ".join(f"scenario {s['scenario']} {s.get('verdict')}" for s in scenarios))
    return passed, ("PASSED: " if passed else "FAILED: ") + "; ".join(parts)


def rollup_states(states: Mapping[str, str], node_app: Mapping[str, str],
                  app_env: Mapping[str, str]) -> dict[str, str]:
    """Final states for an app (worst of its nodes) and an environment node (used), so no node of a
    finished run is left drawn as pending."""
    order = ["Failed", "Crashed", "Skipped", "Cancelled", "Completed"]
    by_app: dict[str, list[str]] = {}
    for node, state in states.items():
        if node in node_app:
            by_app.setdefault(node_app[node], []).append(state)
    out: dict[str, str] = {}
    for app, found in by_app.items():
        out[f"app:{app}"] = next((s for s in order if s in found), "Completed")
        out[f"env:{app_env[app]}"] = "Completed"
    return out


def _cell(text: Any, limit: int = 160) -> str:
    """Table-safe text: one line, no pipes, bounded."""
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|")[:limit]


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def _failures(failures: Sequence[Mapping[str, Any]], clusters: Mapping[str, Mapping[str, Any]],
              logs: Mapping[tuple[str, int], str], shard_of: Mapping[tuple[str, str], int], limit: int = 25
              ) -> list[str]:
    lines = [f"## Failures ({len(failures)})"]
    for f in failures[:limit]:
        c = clusters.get(str(f.get("cluster")), {})
        log = logs.get((f["app"], shard_of.get((f["app"], f["node_id"]), -1)), "")
        triage = f" (triaged: {f['triage']}; computed: {c.get('computed_category')})" if f.get("triage") else ""
        seen = "new" if c.get("new", True) else f"seen in {c.get('runs_seen')} runs"
        lines += ["", f"### {f['app']} `{f['node_id']}`", "",
                  f"- **category** {f['category']}{triage} · defect type {f.get('defect_type', '')} · "
                  f"**owner** {f['owner']}",
                  f"- **cluster** `{f.get('cluster', '')}`: {c.get('count', 1)} test(s), {seen}",
                  f"- **message** `{_cell(f.get('message', ''), 200)}`"]
        if c.get("likely_cause") or c.get("hint"):
            lines.append(f"- **suggested cause** {_cell(c.get('likely_cause') or c.get('hint'), 300)}")
        if log:
            lines.append(f"- [task-run log]({log})")
    if len(failures) > limit:
        lines += ["", f"… and {len(failures) - limit} more in the failures artifact."]
    return lines


def _not_run(results: Sequence[TestResult]) -> list[str]:
    skipped = [r for r in results if r.outcome == "skipped"]
    if not skipped:
        return []
    lines = [f"## Not run or skipped ({len(skipped)})", "", "| app | test | reason |", "|---|---|---|"]
    lines += [f"| {r.app} | `{r.node_id}` | {_cell(r.message.removeprefix(NOT_RUN_PREFIX) or 'skipped')} |"
              for r in skipped[:200]]
    return lines


def _scenarios(scenarios: Sequence[Mapping[str, Any]], flows: Mapping[str, Sequence[tuple[str, str, str]]]
               ) -> list[str]:
    lines: list[str] = []
    for s in scenarios:
        lines += ["", f"### Scenario `{s['scenario']}`: {s.get('verdict')}", ""]
        if s.get("reasons"):
            lines += ["Why: " + _cell("; ".join(s["reasons"]), 400), ""]
        lines += ["| step | app | status | outputs | note |", "|---|---|---|---|---|"]
        lines += [f"| {st['name']} | {st['app']} | {st['status']} | {', '.join(st.get('outputs') or []) or '-'} | "
                  f"{_cell(st.get('reason', ''))} |" for st in s.get("steps", [])]
        if flows.get(s["scenario"]):
            lines += ["", "Data flow: " + "; ".join(f"`{k}`: {a} → {b}" for k, a, b in flows[s["scenario"]])]
    return ["## Scenarios", *lines] if lines else []


def _selection(selection: Selection, counts: Mapping[str, int], limit: int = 30) -> list[str]:
    lines = ["## Selection", "",
             f"`{selection.base}` = `{short(selection.base_commit)}` → `{selection.head}` = "
             f"`{short(selection.head_commit)}` ({selection.mode}): {len(selection.selected)} test id(s) selected, "
             f"{len(selection.skipped)} not affected, {len(selection.left_out)} left out by budget; "
             f"they expanded to {counts['tests']} test(s).", ""]
    if selection.changed_files:
        lines += ["Changed: " + ", ".join(f"`{f}`" for f in selection.changed_files[:30]), ""]
    lines += ["| app | test | why |", "|---|---|---|"]
    lines += [f"| {t.app} | `{t.test_id}` | {_cell(t.reason, 200)} |" for t in selection.selected[:limit]]
    if len(selection.selected) > limit:
        lines.append(f"| … | {len(selection.selected) - limit} more (see the selection artifact) | |")
    return lines


def _environments(envs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not envs:
        return []
    ran = any("shards" in e for e in envs)  # which member ran which shard (several members of a pool)
    lines = ["## Environments", "", "| pool | environment | host | provider | prepared | lock wait |"
             + (" shards |" if ran else ""), "|---|---|---|---|---|---|" + ("---|" if ran else "")]
    lines += [f"| {e['pool']} | {e['id']} | {e['host']} | {e['provider']} | {e['prepared']} | "
              f"{e['lock_wait']:.1f}s |" + (f" {e.get('shards', '-')} |" if ran else "") for e in envs]
    return lines


def run_summary_markdown(*, suite: str, selection: Selection, shards: Sequence[ShardResult],
                         failures: Sequence[Mapping[str, Any]], clusters: Sequence[Mapping[str, Any]] = (),
                         scenarios: Sequence[Mapping[str, Any]] = (),
                         data_flows: Mapping[str, Sequence[tuple[str, str, str]]] | None = None,
                         not_run: Mapping[str, str] | None = None, envs: Sequence[Mapping[str, Any]] = (),
                         logs: Mapping[tuple[str, int], str] | None = None, history_md: str = "",
                         graph_mermaid: str = "", wall_seconds: float = 0.0,
                         notes: Sequence[str] = ()) -> str:
    """The run summary: verdict first, then failures, not-run tests, scenarios, history, selection,
    environments and the graph."""
    results = [r for s in shards for r in s.results]
    counts = run_counts(shards)
    passed, reason = verdict(counts, failures, scenarios, not_run or {})
    shard_of = {(r.app, r.node_id): r.shard for r in results}
    title = ": ".join(reason.split("; ")[0].split(": ")[:2])
    lines = [f"# {title}", "", f"**Why:** {reason}", "",
             f"Suite `{suite}` · head `{short(selection.head_commit)}` · **{counts['tests']} tests**: "
             f"{counts['passed']} passed · {counts['failed']} failed · {counts['errors']} errors · "
             f"{counts['skipped']} skipped ({counts['not_run']} not run) · {counts['flaky']} flaky · "
             f"wall {wall_seconds:.1f}s", ""]
    if notes:  # which commit was tested, stand-ins: read before the numbers
        lines += [f"- {'**' + n + '**' if n.startswith('WARNING') else n}" for n in notes] + [""]
    if failures:
        lines += _failures(failures, {str(c.get("id")): c for c in clusters}, logs or {}, shard_of) + [""]
    lines += _not_run(results) + [""]
    lines += _scenarios(scenarios, data_flows or {}) + [""]
    if history_md:
        lines += [history_md, ""]
    lines += _selection(selection, counts) + [""]
    lines += _environments(envs) + [""]
    if graph_mermaid:
        lines += ["## Graph", "", "```mermaid", graph_mermaid, "```"]
    return "\n".join(lines)


def run_tags(suite: str, apps: Sequence[str], owners: Mapping[str, Sequence[str]], pools: Sequence[str],
             head_commit: str) -> list[str]:
    """Tags for the flow run and its task runs, so the Runs page filters by suite, app, team, pool, commit."""
    tags = [f"suite:{suite}", *(f"app:{a}" for a in apps), *(f"owner:{o}" for a in apps for o in owners.get(a, ())),
            *(f"pool:{p}" for p in pools)]
    if head_commit:
        tags.append(f"commit:{head_commit[:10]}")
    return list(dict.fromkeys(tags))


def locks_markdown(table: Mapping[str, Mapping[str, Any]], ui_url: str = "") -> str:
    """Per pool: its slots, the runs holding them and the running runs waiting for one, linked."""
    def run(r: Mapping[str, str]) -> str:
        return _link(f"{r['name']} ({r['state']})", f"{ui_url}/runs/flow-run/{r['run_id']}" if ui_url else "")

    lines = ["# Pool locks", "", "| pool | slots | held by | waiting (running, no slot) |", "|---|---|---|---|"]
    for pool, t in table.items():
        lines.append(f"| {pool} | {t['slots']} | {'<br>'.join(run(h) for h in t['holders']) or '-'} | "
                     f"{'<br>'.join(run(w) for w in t['waiters']) or '-'} |")
    return "\n".join(lines)
