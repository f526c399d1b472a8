"""Delivery decisions and bookkeeping: which block gets which cluster, what happened, what stays secret.

The shell loads the blocks and passes ``send`` (one notification) and a GitHub client in; everything here is
plain data plus the stdlib logging filter that keeps secrets out of third-party HTTP logs while delivering.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel

from testpilot.errors import TestpilotError
from testpilot.failures.model import FailureAnalysis
from testpilot.failures.notify import issue_payload, notifications, redact

# Loggers that print request URLs (webhook tokens live in the path) or payloads at INFO/DEBUG.
HTTP_LOGGERS = ("apprise", "httpx", "httpcore", "urllib3.connectionpool", "requests")
_TOKENISH = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[\w.~+=-]{8,}$|^[\w.~+=-]{16,}$")


class Delivery(BaseModel):
    """What happened to one cluster on one channel in this run."""

    cluster: str
    team: str = ""
    channel: Literal["notification", "github-issue"] = "notification"
    block: str = ""
    field: str = ""
    status: Literal["sent", "failed", "skipped"] = "sent"
    detail: str = ""
    url: str = ""


class Route(BaseModel):
    block: str
    field: str


def route_for(team: str, notify: Mapping[str, str]) -> Route | None:
    """The team's own block, else the ``default`` one; the field says where in the config it came from."""
    if team and team in notify:
        return Route(block=notify[team], field=f"failures.notify.{team}")
    if "default" in notify:
        return Route(block=notify["default"], field="failures.notify.default")
    return None


def url_secrets(url: str) -> list[str]:
    """Parts of a webhook URL that are credentials: user info, token-like path segments and query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [p for p in (parts.username, parts.password) if p]
    found += [unquote(seg) for seg in parts.path.split("/") if _TOKENISH.match(unquote(seg))]
    found += [v for _, v in parse_qsl(parts.query) if _TOKENISH.match(v)]
    return found


def deliver_notifications(analysis: FailureAnalysis, notify: Mapping[str, str],
                          send: Callable[[Route, str, str], None], *, secrets: Sequence[str] = ()
                          ) -> list[Delivery]:
    """Exactly one ``send(route, subject, body)`` per cluster; a failing send is recorded, not raised."""
    if not notify:
        return []
    out: list[Delivery] = []
    for payload in notifications(analysis, secrets=secrets):
        team, route = payload["team"], route_for(payload["team"], notify)
        if route is None:
            out.append(Delivery(cluster=payload["cluster_id"], team=team, status="skipped",
                                detail=f"no block for team {team or '(none)'}: add failures.notify.{team or 'default'}"
                                       " or failures.notify.default"))
            continue
        done = Delivery(cluster=payload["cluster_id"], team=team, block=route.block, field=route.field)
        try:
            send(route, payload["title"], payload["body"])
        except Exception as exc:  # a channel that fails must not stop the others or the run
            done = done.model_copy(update={"status": "failed", "detail": redact(str(exc) or type(exc).__name__,
                                                                                secrets)})
        out.append(done)
    return out


class IssueTracker(Protocol):
    def issues_by_marker(self, markers: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]: ...
    def comment(self, number: int, body: str) -> dict[str, Any]: ...
    def reopen(self, number: int) -> dict[str, Any]: ...


def file_issues(analysis: FailureAnalysis, tracker: IssueTracker, *, block: str, categories: Iterable[str] = (),
                secrets: Sequence[str] = ()) -> list[Delivery]:
    """Open an issue per cluster, or comment on the one carrying its marker (reopened unless 'not planned')."""
    wanted = set(categories)
    clusters = [c for c in analysis.clusters if not wanted or c.category in wanted]
    payloads = {c.id: issue_payload(c, run_id=analysis.run_id, flow_run_url=analysis.flow_run_url, secrets=secrets)
                for c in clusters}
    base = {"channel": "github-issue", "block": block, "field": "failures.issues.block"}
    try:
        existing = tracker.issues_by_marker([p["marker"] for p in payloads.values()]) if clusters else {}
    except TestpilotError as exc:
        return [Delivery(cluster=c.id, team=c.team, status="failed", detail=redact(str(exc), secrets), **base)
                for c in clusters]
    out: list[Delivery] = []
    for c in clusters:
        p, done = payloads[c.id], Delivery(cluster=c.id, team=c.team, **base)
        try:
            issue = existing.get(p["marker"])
            if issue is None:
                issue = tracker.create_issue(p["title"], p["body"], p["labels"])
                detail = f"created #{issue['number']}"
            else:
                tracker.comment(issue["number"], p["comment"])
                detail = f"commented on #{issue['number']}"
                if issue.get("state") == "closed" and issue.get("state_reason") != "not_planned":
                    tracker.reopen(issue["number"])
                    detail += " and reopened it"
            done = done.model_copy(update={"detail": detail, "url": str(issue.get("html_url", ""))})
        except TestpilotError as exc:
            done = done.model_copy(update={"status": "failed", "detail": redact(str(exc), secrets)})
        out.append(done)
    return out


def delivery_rows(deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
    """Rows for a table artifact, one per cluster and channel."""
    return [{"cluster": d.cluster, "team": d.team or "-", "channel": d.channel, "block": d.block or "-",
             "status": d.status, "detail": d.url or d.detail} for d in deliveries]


class _RedactSecrets(logging.Filter):
    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
        return True


@contextmanager
def redacting_logs(secrets: Sequence[str], loggers: Iterable[str] = HTTP_LOGGERS) -> Iterator[None]:
    """While delivering, redact ``secrets`` (and credential shapes) from records these loggers emit."""
    filt = _RedactSecrets(secrets)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addFilter(filt)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(filt)
