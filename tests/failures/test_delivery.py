"""Delivery of failure clusters through real Prefect notification blocks, saved and loaded through the Prefect
API, to real loopback receivers (HTTP, an HTTPS intercepting proxy, a GitHub fake, SMTP)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock, MicrosoftTeamsWebhook, SlackWebhook
from pydantic import SecretStr

from blocks import GitHubIssues, SmtpEmail
from tasks.notify import notify_clusters
from testpilot.errors import ConfigError
from testpilot.failures.analysis import analyse_failures
from testpilot.failures.config import FailuresConfig
from testpilot.failures.delivery import Route, deliver_notifications, file_issues, route_for, url_secrets
from testpilot.failures.github import GitHubIssuesClient
from testpilot.failures.model import FailureAnalysis
from testpilot.failures.records import FailureRecord
from testpilot.failures.report import render_text, report_section
from testpilot.suite import load_suite

from .receivers import FakeGitHub, InterceptingProxy, Receiver, SmtpReceiver
from .test_routing_notify import CODEOWNERS
from .variants import entry_record, load_corpus

PASSWORD = "s3cr3t-Pa55word"  # a database password inside a failure message
BEARER = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # a token in a test's output
SLACK_TOKEN = "Xk9qRt2Lm8Vw4Zp6Yb3Nc7Hd"  # the secret last part of a Slack webhook URL
SLACK_URL = f"https://hooks.slack.com/services/T0TESTPLT/B0TESTPLT/{SLACK_TOKEN}"
TEAMS_SIG = "Tm5SigQw8Er2Ty6Ui0Op"
TEAMS_HOST = "prod-00.westeurope.logic.azure.com"
TEAMS_URL = (f"https://{TEAMS_HOST}:443/workflows/4f1c9e2ab37d4c0e9b1f6a2d8c5e7f30/triggers/manual/paths/invoke"
             f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}")
GH_TOKEN = "gh-fine-grained-Wq3Er5Ty7Ui9"
HOOK_TOKEN = "hk7Pz2Qm9Lx4Rb8Vn"  # path token of a custom webhook
HOOK_KEY = "key-Jd8Fs6Ga4Hk2"
SMTP_PASSWORD = "smtp-Pw9Xc7Vb5Nm3"


def five_failures() -> list[FailureRecord]:
    """Three tests failing on one unreachable database (secrets in the message), two on one product bug."""
    corpus = load_corpus()
    refused = next(entry_record(e) for e in corpus if "test_postgres_refused" in e["id"])
    vat = next(entry_record(e) for e in corpus if "test_vat_for_country" in e["id"])
    message = f"dsn postgresql://app:{PASSWORD}@db:5432/shop, alerts {SLACK_TOKEN} {TEAMS_SIG}: {refused.message}"
    return [refused.model_copy(update={"test_id": f"tests/test_orders.py::test_db_{i}", "host": "10.0.0.7",
                                       "message": message, "output": f"Authorization: Bearer {BEARER}"})
            for i in range(3)] + [vat.model_copy(update={"test_id": f"tests/test_tax.py::test_vat_{c}"})
                                  for c in ("at", "it")]


def analyse(run_id: str = "run-42") -> FailureAnalysis:
    return analyse_failures(five_failures(), FailuresConfig(routing={"environment": "infra"}, default_team="triage"),
                            run_id=run_id, flow_run_url=f"http://prefect.local/runs/flow-run/{run_id}",
                            changed_files=["apps/shop/shop/pricing.py"], codeowners=CODEOWNERS,
                            app_paths={"shop": "apps/shop"})


def task_input(analysis: FailureAnalysis) -> dict[str, Any]:
    """What the analyse_failures task hands on."""
    return {"section": report_section(analysis), "per_test": [], "dirty_hosts": []}


def write_suite(tmp_path: Path, **failures: Any) -> str:
    (tmp_path / "apps" / "shop").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "testpilot.yaml"
    path.write_text(yaml.safe_dump({"name": "notifydemo", "apps": {"shop": {"path": "apps/shop",
                                                                            "test_command": "pytest {tests}"}},
                                    "failures": {"routing": {"environment": "infra"}, **failures}}, sort_keys=False))
    return str(path)


@flow(name="testpilot-deliver")
def deliver(suite: str, analysis: dict[str, Any]) -> dict[str, Any]:
    return notify_clusters(suite, analysis)


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InterceptingProxy]:
    """Slack's and Teams' https hosts, answered on loopback (the blocks keep their real URLs)."""
    with InterceptingProxy(tmp_path / "tls", ("hooks.slack.com", TEAMS_HOST)) as p:
        for var in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(var, p.url)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(var, "127.0.0.1,localhost")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(p.tls_files.ca_bundle))
        yield p


@pytest.mark.flows
def test_two_clusters_over_five_failures_reach_their_teams_once_each_without_secrets(
        prefect_api: str, tmp_path: Path, proxy: InterceptingProxy, caplog: pytest.LogCaptureFixture) -> None:
    github = FakeGitHub("acme/shop", GH_TOKEN)
    with Receiver(github) as gh_server, Receiver() as webhook:
        github.base_url = gh_server.url
        SlackWebhook(url=SecretStr(SLACK_URL)).save("tp-slack-infra", overwrite=True)
        MicrosoftTeamsWebhook(url=SecretStr(TEAMS_URL)).save("tp-teams-pricing", overwrite=True)
        CustomWebhookNotificationBlock(name="qa", url=f"{webhook.url}/hooks/{HOOK_TOKEN}",
                                       json_data={"text": "{{subject}}\n{{body}}"}).save("tp-webhook", overwrite=True)
        GitHubIssues(repository="acme/shop", token=SecretStr(GH_TOKEN), api_url=gh_server.url).save(
            "tp-github", overwrite=True)
        suite = write_suite(tmp_path, notify={"infra": "tp-slack-infra", "@acme/pricing": "tp-teams-pricing",
                                              "default": "tp-webhook"}, issues={"block": "tp-github"})
        for name in (None, "prefect", "apprise", "urllib3", "httpx"):
            caplog.set_level(logging.DEBUG, logger=name)
        result = deliver(suite, task_input(analyse()))

    slack = [r for r in proxy.requests if r.host == "hooks.slack.com"]
    teams = [r for r in proxy.requests if r.host.startswith(TEAMS_HOST)]
    assert (len(proxy.requests), len(slack), len(teams), len(webhook.requests)) == (2, 1, 1, 0)
    assert slack[0].path == f"/services/T0TESTPLT/B0TESTPLT/{SLACK_TOKEN}"  # the real webhook address
    message = slack[0].json()["attachments"][0]
    assert message["title"].startswith("[environment] 3 failures: OperationalError")
    assert "tests/test_orders.py::test_db_2" in message["text"] and "Suggested cause: system failure" in message["text"]
    assert "Flow run: http://prefect.local/runs/flow-run/run-42" in message["text"]
    card = {b.get("id"): b.get("text") for b in teams[0].json()["attachments"][0]["content"]["body"]}
    assert card["title"].startswith("[product_bug] 2 failures: KeyError")
    assert "apps/shop/shop/pricing.py:14, changed in this run" in card["body"]

    created = [r.json() for r in gh_server.requests if r.method == "POST"]
    assert [i["title"][:14] for i in created] == ["[environment] ", "[product_bug] "]
    assert all("<!-- testpilot-cluster: " in i["body"] and "testpilot" in i["labels"] for i in created)
    assert [(d["channel"], d["status"]) for d in result["section"]["delivery"]] == [
        ("notification", "sent"), ("notification", "sent"), ("github-issue", "sent"), ("github-issue", "sent")]
    assert {d["team"]: d["block"] for d in result["section"]["delivery"] if d["channel"] == "notification"} == {
        "infra": "tp-slack-infra", "@acme/pricing": "tp-teams-pricing"}

    payloads = [r.body.decode() for r in proxy.requests + gh_server.requests]
    everything = "\n".join(payloads) + json.dumps(result["section"]["delivery"]) + caplog.text
    for secret in (SLACK_TOKEN, TEAMS_SIG, GH_TOKEN, PASSWORD, BEARER, HOOK_TOKEN):
        assert secret not in everything, secret
    assert PASSWORD not in json.dumps(result)  # the report's signatures too (credential-shaped, redacted by shape)
    # The checks can fail: without the blocks' secrets the failure text keeps them (the signature's template
    # now masks words with digits, so the example message carries them), and Apprise did log the URLs.
    unredacted = json.dumps([c.example for c in analyse().clusters])
    assert SLACK_TOKEN in unredacted and TEAMS_SIG in unredacted
    assert "Slack POST URL: *** (cert_verify=True)" in caplog.text and "Workflows POST URL: https://" in caplog.text


@pytest.mark.flows
def test_missing_block_is_reported_and_logged_while_the_other_cluster_is_delivered(
        prefect_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Receiver() as webhook:
        CustomWebhookNotificationBlock(
            name="qa", url=f"{webhook.url}/hooks/{HOOK_TOKEN}", json_data={"subject": "{{subject}}", "text": "{{body}}"},
            headers={"X-Key": "{{key}}"}, secrets={"key": HOOK_KEY}).save("tp-webhook-qa", overwrite=True)
        suite = write_suite(tmp_path, notify={"infra": "tp-no-such-block", "default": "tp-webhook-qa"})
        caplog.set_level(logging.INFO, logger="prefect")
        result = deliver(suite, task_input(analyse()))

    [request] = webhook.requests
    assert request.path == f"/hooks/{HOOK_TOKEN}" and request.headers["X-Key"] == HOOK_KEY
    assert request.json()["subject"].startswith("[product_bug] 2 failures")
    failed, sent = result["section"]["delivery"]
    assert (failed["status"], failed["team"], sent["status"], sent["field"]) == (
        "failed", "infra", "sent", "failures.notify.default")
    line = Path(suite).read_text().splitlines().index("    infra: tp-no-such-block") + 1
    assert f"testpilot.yaml:{line} failures.notify.infra: notification block 'tp-no-such-block' unavailable: " \
           "no block named 'tp-no-such-block'" in failed["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tp-no-such-block" in w and "failures.notify.infra" in w for w in warnings)
    text = render_text(result["section"])
    assert "Delivery: 1 sent, 1 failed" in text and "via tp-no-such-block" in text
    assert HOOK_KEY not in json.dumps(result) + caplog.text


@pytest.mark.flows
def test_smtp_email_block_mails_its_teams_cluster_as_plain_text(prefect_api: str, tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        SmtpEmail(smtp_host="127.0.0.1", smtp_port=smtp.port, security="insecure", username="qa-bot",
                  password=SecretStr(SMTP_PASSWORD), from_email="testpilot@example.com",
                  to_emails=["qa@example.com"]).save("tp-email-pricing", overwrite=True)
        suite = write_suite(tmp_path, notify={"@acme/pricing": "tp-email-pricing"})
        result = deliver(suite, task_input(analyse()))
    assert [(d["team"], d["status"]) for d in result["section"]["delivery"]] == [
        ("infra", "skipped"), ("@acme/pricing", "sent")]  # no block for infra and no default
    [mail] = smtp.messages
    assert mail["login"] == "qa-bot" and [r.lower() for r in mail["rcpt"]] == ["rcpt to:<qa@example.com>"]
    assert "Subject: [product_bug] 2 failures: KeyError" in mail["data"] and "Content-Type: text/plain" in mail["data"]
    assert "text/html" not in mail["data"] and SMTP_PASSWORD not in mail["data"]


def test_recurring_cluster_gets_a_comment_on_its_issue_found_by_marker_across_pages() -> None:
    github = FakeGitHub("acme/shop", GH_TOKEN)
    with Receiver(github) as server:
        github.base_url = server.url
        client = GitHubIssuesClient("acme/shop", GH_TOKEN, api_url=server.url)
        first = file_issues(analyse("run-1"), client, block="gh")
        assert [d.detail for d in first] == ["created #1", "created #2"]
        assert first[0].url == "https://github.com/acme/shop/issues/1"
        for i in range(150):  # newer issues push the two cluster issues to the second page
            github.add(f"unrelated {i}", "no marker", ["testpilot"])
        github.add("a pull request", github.issues[0]["body"], ["testpilot"])["pull_request"] = {}
        github.issues[0].update(state="closed", state_reason="completed")
        github.issues[1].update(state="closed", state_reason="not_planned")
        second = file_issues(analyse("run-2"), client, block="gh")
        wrong = file_issues(analyse("run-3"), GitHubIssuesClient("acme/shop", "wrong-Tok3n-Zz", api_url=server.url),
                            block="gh")
    assert [d.detail for d in second] == ["commented on #1 and reopened it", "commented on #2"]
    assert len(github.issues) == 153 and [i["state"] for i in github.issues[:2]] == ["open", "closed"]
    assert github.comments[1][0].startswith("Seen again in run run-2: 3 failures")
    pages = [r.path for r in server.requests if r.method == "GET"]
    assert len(pages) == 1 + 2 + 1  # run 1: one page; run 2: two pages; the bad token stops at the first
    assert {d.status for d in wrong} == {"failed"} and "401 Bad credentials" in wrong[0].detail
    assert "the block's token is invalid" in wrong[0].detail and "wrong-Tok3n-Zz" not in wrong[0].detail


def test_routing_to_blocks_url_secrets_and_failed_sends_are_recorded() -> None:
    notify = {"infra": "slack-infra", "default": "teams-qa"}
    assert route_for("infra", notify) == Route(block="slack-infra", field="failures.notify.infra")
    assert route_for("@acme/pricing", notify) == Route(block="teams-qa", field="failures.notify.default")
    assert route_for("", {"infra": "slack-infra"}) is None
    assert set(url_secrets(SLACK_URL)) == {"T0TESTPLT", "B0TESTPLT", SLACK_TOKEN}
    teams = url_secrets(TEAMS_URL)
    assert TEAMS_SIG in teams and "4f1c9e2ab37d4c0e9b1f6a2d8c5e7f30" in teams and "2016-06-01" not in teams
    assert url_secrets("https://bot:hunter22@example.com/api") == ["bot", "hunter22"]

    sent: list[tuple[str, str]] = []

    def send(route: Route, subject: str, body: str) -> None:
        if route.block == "broken":
            raise RuntimeError(f"POST https://hooks.example/{HOOK_TOKEN} answered 500")
        sent.append((route.block, subject))

    out = deliver_notifications(analyse(), {"infra": "broken"}, send, secrets=[HOOK_TOKEN])
    assert [(d.team, d.status) for d in out] == [("infra", "failed"), ("@acme/pricing", "skipped")]
    assert HOOK_TOKEN not in out[0].detail and "answered 500" in out[0].detail
    assert "failures.notify.default" in out[1].detail
    out = deliver_notifications(analyse(), {"default": "teams-qa"}, send)
    assert [s[0] for s in sent] == ["teams-qa", "teams-qa"] and {d.status for d in out} == {"sent"}
    assert deliver_notifications(analyse(), {}, send) == []


@pytest.mark.parametrize("failures,where,message", [
    ({"notify": {"payments-team": "Slack Payments"}}, "failures.notify.payments-team", "is not a block name"),
    ({"notify": {"default": "slack-webhook/qa"}, "issues": {"block": "gh", "categories": ["nope"]}},
     "failures.issues.categories.0", "unknown category 'nope'"),
])
def test_notify_and_issue_config_errors_name_file_line_and_field(tmp_path: Path, failures: dict[str, Any],
                                                                 where: str, message: str) -> None:
    path = write_suite(tmp_path, **failures)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    key = where.split(".")[-1] if not where[-1].isdigit() else "- nope"
    line = next(i for i, text in enumerate(Path(path).read_text().splitlines(), 1) if key in text)
    assert str(err.value).startswith(f"{path}:{line} {where}: ") and message in str(err.value)
