"""Output helpers: table-artifact rows, the report.json section and the text for ``testpilot failures --run``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from testpilot.failures.model import FailureAnalysis


def cluster_rows(analysis: FailureAnalysis) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact, one per cluster, biggest first."""
    return [{
        "cluster": c.id, "category": c.category, "defect type": c.defect_type, "count": c.count,
        "tests": len(c.tests), "owner": c.team or ", ".join(c.owners) or "-",
        "suggestion": c.likely_cause or c.hint, "seen": "new" if c.new else f"{c.runs_seen} runs",
        "signature": c.signature[:160],
    } for c in analysis.clusters]


def report_section(analysis: FailureAnalysis) -> dict[str, Any]:
    """The ``failures`` section of report.json; ``render_text`` and the next run's history read it back."""
    return {
        "run_id": analysis.run_id, "flow_run_url": analysis.flow_run_url, "analysed_at": analysis.analysed_at,
        "failures": analysis.failures, "by_category": analysis.by_category(),
        "dirty_hosts": analysis.dirty_hosts, "host_rates": analysis.host_rates,
        "clusters": [c.model_dump() for c in analysis.clusters],
    }


def render_text(report: Mapping[str, Any] | FailureAnalysis, *, tests_shown: int = 5) -> str:
    """Plain text of a run's clusters, from report.json's section (or an analysis), for the CLI."""
    data = report_section(report) if isinstance(report, FailureAnalysis) else report
    clusters = data.get("clusters") or []
    failures = data.get("failures", sum(c.get("count", 0) for c in clusters))
    lines = [f"Run {data.get('run_id') or '?'}: {failures} failures in {len(clusters)} clusters"]
    by_cat = data.get("by_category") or {}
    if by_cat:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])))
    if data.get("dirty_hosts"):
        lines.append(f"  dirty hosts: {', '.join(data['dirty_hosts'])}")
    for i, c in enumerate(clusters, start=1):
        seen = "new" if c.get("new", True) else f"seen in {c.get('runs_seen')} runs since {c.get('first_seen')}"
        lines.append("")
        lines.append(f"{i}. [{c.get('category')}/{c.get('defect_type')}] x{c.get('count')}  {c.get('id')}  ({seen})")
        lines.append(f"   {c.get('signature')}")
        tests = c.get("tests") or []
        more = f" (+{len(tests) - tests_shown} more)" if len(tests) > tests_shown else ""
        lines.append(f"   tests: {', '.join(tests[:tests_shown])}{more}")
        if c.get("likely_cause"):
            lines.append(f"   cause: {c['likely_cause']}")
        if c.get("nearest"):
            lines.append(f"   nearest known: {c['nearest']} ({c.get('nearest_category')}, "
                         f"{c.get('nearest_similarity', 0):.2f})")
        owner = c.get("team") or ", ".join(c.get("owners") or []) or "-"
        lines.append(f"   owner: {owner}" + (f" ({c['route_reason']})" if c.get("route_reason") else ""))
    deliveries = data.get("delivery") or []
    if deliveries:
        counts = {s: sum(d.get("status") == s for d in deliveries) for s in ("sent", "failed", "skipped")}
        lines.extend(["", "Delivery: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)])
        lines.extend(f"  {d.get('status')}: {d.get('channel')} for {d.get('cluster')} via {d.get('block') or '-'}: "
                     f"{d.get('detail')}" for d in deliveries if d.get("status") != "sent")
    if data.get("flow_run_url"):
        lines.extend(["", f"Flow run: {data['flow_run_url']}"])
    return "\n".join(lines)


def verdict_rows(analysis: FailureAnalysis) -> list[dict[str, Any]]:
    """Each failing test with its own category (its cluster reports the mix): what `testpilot analyse` prints."""
    return [{"app": v.app, "node_id": v.test_id, "category": v.category, "defect_type": v.defect_type,
             "owner": v.owner or "unowned", "message": v.message, "cluster": v.cluster} for v in analysis.tests]


def failures_markdown(section: Mapping[str, Any]) -> str:
    """The failures artifact: the text report, and the section as JSON for `testpilot failures --run`."""
    return ("# Failures\n\n```text\n" + render_text(section) + "\n```\n\n<details><summary>data</summary>\n\n"
            "```json\n" + json.dumps(section, default=str) + "\n```\n</details>\n")


def section_from_markdown(text: str) -> dict[str, Any]:
    """The report section back out of a failures artifact."""
    body = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    return dict(json.loads(body))
