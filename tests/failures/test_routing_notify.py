from __future__ import annotations

import http.server
import json
import threading

import pytest
import requests

from testpilot.errors import ConfigError
from testpilot.failures.analysis import analyse_failures
from testpilot.failures.config import FailuresConfig
from testpilot.failures.notify import (
    CLUSTER_EVENT,
    cluster_event,
    group_by_team,
    issue_payload,
    notifications,
    redact,
)
from testpilot.failures.records import FailureRecord
from testpilot.failures.report import render_text
from testpilot.failures.routing import CodeOwners, decide_route
from testpilot.failures.suggest import HostRun, changed_file_suspects, host_stats, is_dirty

from .variants import entry_record, load_corpus

CODEOWNERS = """
# default owner
*                       @acme/qa
/apps/shop/             @acme/shop
/apps/shop/shop/pricing.py  @acme/pricing   # pricing is its own team
/apps/shop/tests/       @acme/shop-qa
*.sql                   @acme/dba
"""
PASSWORD = "s3cr3t-Pa55word"
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def test_codeowners_last_match_wins():
    owners = CodeOwners.parse(CODEOWNERS)
    assert owners.owners_of("apps/shop/shop/pricing.py") == ("@acme/pricing",)
    assert owners.owners_of("apps/shop/shop/cart.py") == ("@acme/shop",)
    assert owners.owners_of("apps/shop/tests/test_a.py") == ("@acme/shop-qa",)
    assert owners.owners_of("apps/shop/db/schema.sql") == ("@acme/dba",)
    assert owners.owners_of("README.md") == ("@acme/qa",)
    with pytest.raises(ConfigError) as err:
        CodeOwners.parse("*.py @a\n!x.py @b\n", source="CODEOWNERS")
    assert "CODEOWNERS:2" in str(err.value)


def test_route_order_rule_then_changed_file_owner_then_test_owner():
    owners = CodeOwners.parse(CODEOWNERS)
    kw = {"test_files": ["apps/shop/tests/test_a.py"], "codeowners": owners}
    assert decide_route("environment", {"environment": "infra"}, **kw).team == "infra"
    by_change = decide_route("product_bug", {}, suspect_files=["apps/shop/shop/pricing.py"], **kw)
    assert (by_change.team, by_change.owners) == ("@acme/pricing", ("@acme/pricing", "@acme/shop-qa"))
    assert decide_route("product_bug", {}, **kw).team == "@acme/shop-qa"
    assert decide_route("product_bug", {}, default_team="triage").team == "triage"


def test_changed_file_in_traceback_is_the_likely_cause():
    vat = next(entry_record(e) for e in load_corpus() if "test_vat_for_country" in e["id"])
    (first, *_) = changed_file_suspects(vat.traceback, ["apps/shop/shop/pricing.py", "apps/shop/README.md"])
    assert first.text == "likely cause: apps/shop/shop/pricing.py:14, changed in this run"
    exact = changed_file_suspects(vat.traceback, ["apps/shop/shop/pricing.py"], {"apps/shop/shop/pricing.py": [14]})
    assert exact[0].text.endswith("line changed in this run")
    assert changed_file_suspects(vat.traceback, ["other/pricing.py"]) == []


def test_host_that_keeps_failing_is_marked_dirty():
    history = [HostRun(host="h1", system_failure=f) for f in (False, True, True)]
    history += [HostRun(host="h2", system_failure=f) for f in (True, True, False)]
    stats = host_stats(history, window=10)
    assert is_dirty(stats["h1"], min_runs=3, rate=0.5)
    assert not is_dirty(stats["h2"], min_runs=3, rate=0.5)  # recovered on its last run
    assert not is_dirty(host_stats(history[:2])["h1"], min_runs=3, rate=0.5)


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


def test_two_clusters_over_five_tests_send_two_notifications_without_secrets(receiver):
    url, received = receiver
    corpus = load_corpus()
    refused = next(entry_record(e) for e in corpus if "test_postgres_refused" in e["id"])
    vat = next(entry_record(e) for e in corpus if "test_vat_for_country" in e["id"])
    records = [
        refused.model_copy(update={"test_id": f"tests/test_orders.py::test_db_{i}", "host": "10.0.0.7",
                                   "message": f"{refused.message} (dsn postgresql://app:{PASSWORD}@db:5432/shop)",
                                   "output": f"Authorization: Bearer {TOKEN}\npassword={PASSWORD}"})
        for i in range(3)
    ] + [vat.model_copy(update={"test_id": f"tests/test_tax.py::test_vat_{c}"}) for c in ("at", "it")]
    config = FailuresConfig(routing={"environment": "infra"}, default_team="triage")
    analysis = analyse_failures(records, config, run_id="run-42", flow_run_url="http://prefect.local/runs/flow-run/42",
                                changed_files=["apps/shop/shop/pricing.py"], codeowners=CODEOWNERS,
                                app_paths={"shop": "apps/shop"}, secrets=[PASSWORD])
    payloads = notifications(analysis, secrets=[PASSWORD, TOKEN])
    receivers = {"infra": f"{url}/hooks/infra", "@acme/pricing": f"{url}/hooks/pricing"}  # team -> block
    for team, batch in group_by_team(payloads).items():
        for payload in batch:
            requests.post(receivers[team], json=payload, timeout=5).raise_for_status()

    assert len(received) == 2
    by_path = {path: body for path, body in received}
    infra, pricing = by_path["/hooks/infra"], by_path["/hooks/pricing"]
    assert (infra["count"], infra["category"], infra["tests_total"]) == (3, "environment", 3)
    assert (pricing["count"], pricing["category"]) == (2, "product_bug")
    assert pricing["suggested_cause"] == "likely cause: apps/shop/shop/pricing.py:14, changed in this run"
    assert all(b["flow_run_url"].endswith("/42") for b in by_path.values())
    assert "10.0.0.7" in infra["suggested_cause"]
    everything = json.dumps(received) + json.dumps([cluster_event(c, run_id="run-42") for c in analysis.clusters])
    everything += json.dumps([issue_payload(c, run_id="run-42") for c in analysis.clusters]) + render_text(analysis)
    assert PASSWORD not in everything and TOKEN not in everything


def test_event_and_issue_payloads():
    analysis = analyse_failures([FailureRecord(test_id="t::a", exception_type="MemoryError", host="h9")],
                                run_id="r1")
    (cluster,) = analysis.clusters
    event = cluster_event(cluster, run_id="r1", flow_run_url="http://x/runs/1")
    assert event["event"] == CLUSTER_EVENT == "testpilot.failure.cluster"
    assert event["resource"]["prefect.resource.id"] == f"testpilot.cluster.{cluster.id}"
    assert event["resource"]["testpilot.category"] == "environment"
    assert event["payload"]["count"] == 1 and event["payload"]["hosts"] == ["h9"]
    issue = issue_payload(cluster, run_id="r1")
    assert issue["marker"] in issue["body"] and "category:environment" in issue["labels"]


@pytest.mark.parametrize("text,leak", [
    ("postgresql://app:hunter22@db/shop", "hunter22"),
    ("Authorization: Bearer abc.def.ghi123", "abc.def.ghi123"),
    ("api_key=AbCdEf123456", "AbCdEf123456"),
    ('{"password": "pw-9876"}', "pw-9876"),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "XXXXXXXX"),
    ("token " + TOKEN, TOKEN),
])
def test_redact(text, leak):
    assert leak not in redact(text)
