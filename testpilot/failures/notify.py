"""Pure payload builders: one notification per cluster per run, a Prefect event per cluster, a GitHub issue.

Every string that leaves through a payload passes ``redact`` first; the shell only delivers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from testpilot.failures.model import ClusterReport, FailureAnalysis

CLUSTER_EVENT = "testpilot.failure.cluster"
MAX_TESTS = 20

_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\b[a-z][\w+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), r"\1***@"),
    (re.compile(r"(\b(?:bearer|token|basic)\s+)[A-Za-z0-9._~+/=-]{6,}", re.I), r"\1***"),
    (re.compile(r"(\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|"
                r"authorization|client[_-]?secret|webhook[_-]?url)['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&)}]+", re.I),
     r"\1***"),
    (re.compile(r"https://hooks\.slack\.com/services/[^\s'\"]+"), "https://hooks.slack.com/services/***"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
                r"AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9]{20,})\b"), "***"),
    (re.compile(r"\b(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{48,}\b"), "***"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secret values and anything shaped like a credential (URL passwords, tokens, keys)."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_payload(value: Any, secrets: Sequence[str] = ()) -> Any:
    """``redact`` applied to every string in a JSON-able structure."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_payload(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_payload(v, secrets) for v in value]
    return value


def _tests_line(cluster: ClusterReport) -> str:
    shown = cluster.tests[:MAX_TESTS]
    more = len(cluster.tests) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def notification_payload(cluster: ClusterReport, *, run_id: str, flow_run_url: str = "",
                         secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The notification for one cluster: receiver, title, text body and the facts behind them."""
    seen = "new in this run" if cluster.new else f"seen in {cluster.runs_seen} runs since {cluster.first_seen}"
    title = f"[{cluster.category}] {cluster.count} failure{'s' if cluster.count != 1 else ''}: {cluster.signature}"
    lines = [
        f"{cluster.count} failing test{'s' if cluster.count != 1 else ''} in run {run_id}, one cause "
        f"({cluster.category}, {cluster.defect_type} defect; {seen}).",
        f"Signature: {cluster.signature}",
        f"Tests: {_tests_line(cluster)}",
    ]
    if cluster.likely_cause:
        lines.append(f"Suggested cause: {cluster.likely_cause}")
    lines.extend(f"Evidence: {s}" for s in cluster.suggestions if s != cluster.likely_cause)
    if cluster.hint:
        lines.append(f"Hint: {cluster.hint}")
    if cluster.nearest:
        lines.append(f"Nearest known cluster: {cluster.nearest} ({cluster.nearest_category}, "
                     f"similarity {cluster.nearest_similarity:.2f}): {cluster.nearest_signature}")
    if cluster.owners:
        lines.append(f"Owners: {', '.join(cluster.owners)}")
    if flow_run_url:
        lines.append(f"Flow run: {flow_run_url}")
    payload = {
        "cluster_id": cluster.id, "run_id": run_id, "team": cluster.team, "route_reason": cluster.route_reason,
        "title": title[:250], "body": "\n".join(lines), "category": cluster.category,
        "defect_type": cluster.defect_type, "count": cluster.count, "tests": cluster.tests[:MAX_TESTS],
        "tests_total": len(cluster.tests), "suggested_cause": cluster.likely_cause, "new": cluster.new,
        "occurrences": cluster.occurrences, "flow_run_url": flow_run_url,
    }
    return redact_payload(payload, secrets)


def notifications(analysis: FailureAnalysis, *, secrets: Sequence[str] = (),
                  categories: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One payload per cluster of this run (optionally only some categories), biggest cluster first."""
    wanted = set(categories) if categories is not None else None
    return [notification_payload(c, run_id=analysis.run_id, flow_run_url=analysis.flow_run_url, secrets=secrets)
            for c in analysis.clusters if wanted is None or c.category in wanted]


def group_by_team(payloads: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Payloads per receiving team ('' for unrouted), so the shell loads each notification block once."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        out.setdefault(p["team"], []).append(p)
    return out


def cluster_event(cluster: ClusterReport, *, run_id: str, flow_run_url: str = "",
                  secrets: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments for ``prefect.events.emit_event`` announcing one cluster of this run."""
    event = {
        "event": CLUSTER_EVENT,
        "resource": {
            "prefect.resource.id": f"testpilot.cluster.{cluster.id}",
            "prefect.resource.name": cluster.signature[:120],
            "testpilot.category": cluster.category,
            "testpilot.defect-type": cluster.defect_type,
            "testpilot.team": cluster.team,
        },
        "related": [{"prefect.resource.id": f"testpilot.run.{run_id}", "prefect.resource.role": "test-run"}],
        "payload": {
            "count": cluster.count, "tests": cluster.tests[:MAX_TESTS], "new": cluster.new,
            "occurrences": cluster.occurrences, "runs_seen": cluster.runs_seen, "first_seen": cluster.first_seen,
            "suggested_cause": cluster.likely_cause, "hosts": cluster.hosts, "flow_run_url": flow_run_url,
        },
    }
    return redact_payload(event, secrets)


def issue_marker(cluster_id: str) -> str:
    """Hidden text in a GitHub issue body that finds the issue again when the cluster recurs."""
    return f"<!-- testpilot-cluster: {cluster_id} -->"


def issue_payload(cluster: ClusterReport, *, run_id: str, flow_run_url: str = "",
                  secrets: Sequence[str] = ()) -> dict[str, Any]:
    """Title, body and labels for a GitHub issue; ``comment`` is what to add when the issue exists."""
    note = notification_payload(cluster, run_id=run_id, flow_run_url=flow_run_url, secrets=secrets)
    body = f"{issue_marker(cluster.id)}\n\n" + note["body"].replace("\n", "\n\n")
    comment = (f"Seen again in run {run_id}: {cluster.count} failures "
               f"({cluster.occurrences} in {cluster.runs_seen} runs). {flow_run_url}").strip()
    return redact_payload({"title": note["title"], "body": body, "comment": comment,
                           "labels": ["testpilot", f"category:{cluster.category}",
                                      f"defect:{cluster.defect_type}"],
                           "marker": issue_marker(cluster.id)}, secrets)
