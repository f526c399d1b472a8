"""Deliver failure clusters: one notification per cluster through the team's Prefect notification block, and
optionally a GitHub issue per cluster. A missing block or a failing channel is logged and recorded in the
report's ``delivery`` list; it never fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import prefect.blocks.notifications  # noqa: F401  registers Prefect's notification block types for Block.load
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from pydantic import BaseModel, SecretStr

import blocks  # noqa: F401  registers Testpilot's block types (GitHubIssues, SmtpEmail)
from blocks.github import GitHubIssues
from tasks.common import TASK_DEFAULTS, suite_at
from tasks.reports import artifact_key
from testpilot.errors import ConfigError, InfrastructureError
from testpilot.failures.delivery import (
    Delivery,
    Route,
    deliver_notifications,
    delivery_rows,
    file_issues,
    redacting_logs,
    url_secrets,
)
from testpilot.failures.model import ClusterReport, FailureAnalysis
from testpilot.suite import Suite


def load_blocks(names: list[str]) -> dict[str, Block | str]:
    """Each named block loaded once: name -> block, or the reason it cannot be had.

    A bare name is looked up across block types; ``type-slug/name`` picks one type.
    """
    slugs: dict[str, list[str]] = {}
    bare, listing_error = sorted({n for n in names if "/" not in n}), ""
    if bare:
        try:
            with get_client(sync_client=True) as client:
                response = client.request("POST", "/block_documents/filter", json={
                    "block_documents": {"name": {"any_": bare}, "is_anonymous": {"eq_": False}},
                    "include_secrets": False})
                for doc in response.json():
                    slugs.setdefault(doc["name"], []).append(doc["block_type"]["slug"])
        except Exception as exc:  # the API hiccups: delivery is lost, the run is not
            listing_error = f"cannot look blocks up in the Prefect API: {type(exc).__name__}: {exc}"
    out: dict[str, Block | str] = {}
    for name in dict.fromkeys(names):
        kinds = [name.split("/", 1)[0]] if "/" in name else slugs.get(name, [])
        if not kinds:
            out[name] = listing_error or f"no block named {name!r}"
        elif len(kinds) > 1:
            out[name] = f"block name {name!r} is used by types {', '.join(kinds)}; write e.g. '{kinds[0]}/{name}'"
        else:
            ref = f"{kinds[0]}/{name.rsplit('/', 1)[-1]}"
            try:
                out[name] = cast(Block, Block.load(ref))  # a sync task: load runs synchronously
            except Exception as exc:  # unknown type, deleted meanwhile, or its package is not installed
                out[name] = f"block {ref!r} cannot be loaded: {exc}"
    return out


def secret_values(value: Any, key: str = "") -> list[str]:
    """Secret strings a block holds (SecretStr, SecretDict, webhook URLs and their token parts, headers)."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return [secret, *url_secrets(secret)]
    if hasattr(value, "get_secret_value"):  # SecretDict and friends
        return secret_values(value.get_secret_value(), "secret")
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in secret_values(getattr(value, name), name)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secret_values(v, key if key in ("secret", "headers", "cookies") else k)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in secret_values(v, key)]
    if isinstance(value, str) and key in ("secret", "headers", "cookies"):
        return [value]
    if isinstance(value, str) and "url" in key:
        return [value, *url_secrets(value)] if url_secrets(value) else []
    return []


def _missing(suite: Suite, route: Route, reason: str) -> ConfigError:
    return ConfigError(f"notification block {route.block!r} unavailable: {reason}", file=suite.source,
                       line=suite.line_of(*route.field.split(".")), field=route.field,
                       hint="save the block (Prefect UI > Blocks, or SlackWebhook(url=...).save(name)) or fix the name")


@task(name="notify-clusters", **TASK_DEFAULTS)
def notify_clusters(suite_path: str, analysis: dict[str, Any]) -> dict[str, Any]:
    """Deliver this run's clusters; returns ``analysis`` with ``section['delivery']`` recording each attempt."""
    suite, section = suite_at(suite_path), analysis["section"]
    config = suite.failures
    if not section.get("clusters") or not (config.notify or config.issues):
        return analysis
    result = FailureAnalysis(run_id=section.get("run_id", ""), flow_run_url=section.get("flow_run_url", ""),
                             clusters=[ClusterReport.model_validate(c) for c in section["clusters"]])
    loaded = load_blocks([*config.notify.values(), *([config.issues.block] if config.issues else [])])
    secrets = [s for b in loaded.values() if isinstance(b, Block) for s in secret_values(b)]
    with redacting_logs(secrets):
        deliveries = deliver_notifications(result, config.notify, _sender(suite, loaded), secrets=secrets)
        if config.issues:
            deliveries += _issues(suite, result, loaded.get(config.issues.block), secrets)
    _report(deliveries, suite.name)
    return {**analysis, "section": {**section, "delivery": [d.model_dump() for d in deliveries]}}


def _sender(suite: Suite, loaded: dict[str, Block | str]) -> Callable[[Route, str, str], None]:
    """Sends one notification through the route's block; a missing block or a refused message raises."""
    def send(route: Route, subject: str, body: str) -> None:
        block = loaded.get(route.block)
        if not isinstance(block, NotificationBlock):
            raise _missing(suite, route, block if isinstance(block, str) else "it is not a notification block")
        try:
            with block.raise_on_failure():
                cast(None, block.notify(body, subject=subject))  # sync here, never a coroutine
        except NotificationError as exc:  # its text is what Apprise logged, already redacted by redacting_logs
            said = [line for line in exc.log.splitlines() if line.strip()][-3:]
            raise InfrastructureError(f"block {route.block!r} did not deliver: {' | '.join(said) or 'no reason given'}",
                                      hint=f"check the block's URL and that its service accepts it ({route.field})"
                                      ) from None
    return send


def _report(deliveries: list[Delivery], suite_name: str) -> None:
    """What was not delivered, as warnings; how much was, as one line; every attempt as a table artifact."""
    logger = get_run_logger()
    for d in deliveries:
        if d.status == "failed":
            logger.warning("%s for cluster %s (team %s) not delivered: %s", d.channel, d.cluster,
                           d.team or "-", d.detail)
    sent = sum(d.status == "sent" for d in deliveries)
    logger.info("delivered %d of %d notification(s) and issue(s)", sent, len(deliveries))
    if deliveries:
        create_table_artifact(delivery_rows(deliveries), key=artifact_key("testpilot-delivery", suite_name),
                              description="Failure notifications and GitHub issues of this run")


def _issues(suite: Suite, analysis: FailureAnalysis, block: Block | str | None, secrets: list[str]
            ) -> list[Delivery]:
    assert suite.failures.issues is not None
    issues = suite.failures.issues
    if not isinstance(block, GitHubIssues):
        reason = block if isinstance(block, str) else "it is not a Testpilot GitHub Issues block"
        error = ConfigError(f"GitHub issues block {issues.block!r} unavailable: {reason}", file=suite.source,
                            line=suite.line_of("failures", "issues", "block"), field="failures.issues.block",
                            hint="save a GitHubIssues block under that name")
        return [Delivery(cluster=c.id, team=c.team, channel="github-issue", block=issues.block,
                         field="failures.issues.block", status="failed", detail=str(error))
                for c in analysis.clusters if not issues.categories or c.category in issues.categories]
    return file_issues(analysis, block.get_client(), block=issues.block, categories=issues.categories,
                       secrets=secrets)
