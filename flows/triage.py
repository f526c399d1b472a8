"""The triage flow: a parameter form in the Prefect UI (deployment ``testpilot-triage/triage``) to
re-categorise a failure cluster or mark it known or flaky. Later runs of the suite apply the decision.
``testpilot triage`` on the command line does the same."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from tasks.triage import save_decision
from testpilot.triage import Decision


@flow(name="testpilot-triage", flow_run_name="triage-{suite}-{cluster}")
def triage(suite: str, cluster: str, category: str = "", defect_type: str = "",
           status: Literal["open", "known", "flaky"] = "open", note: str = "", by: str = "") -> dict[str, Any]:
    """Record a triage decision for cluster ``cluster`` (its id from the run summary) of suite ``suite``
    (the suite's name, e.g. example-shop)."""
    decisions = save_decision(suite, Decision(cluster=cluster, category=category, defect_type=defect_type,
                                              status=status, note=note, by=by))
    get_run_logger().info("cluster %s of %s: %s", cluster, suite, decisions[cluster])
    return dict(decisions[cluster])
