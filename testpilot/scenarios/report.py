"""A scenario run's summary (plain data) and its markdown, from the steps' results and state names.

Outputs are listed by name only: they can hold tokens, and summaries end up in logs and artifacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testpilot.scenarios.plan import ScenarioPlan, StepResult, scenario_verdict


def scenario_summary(plan: ScenarioPlan, results: Mapping[str, StepResult], state_names: Mapping[str, str],
                     services: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """{"scenario", "verdict", "reasons", "steps": [{name, app, status, state, reason, reused, outputs}],
    "services": {app: {ok, detail, url}}}; ``reused`` is true for steps Prefect served from its cache."""
    verdict = scenario_verdict(plan, results)
    steps = []
    for step in plan.steps:
        result = results.get(step.name, StepResult("skipped", reason="not run"))
        state = state_names.get(step.name, "")
        steps.append({"name": step.name, "app": step.app, "status": result.status, "state": state,
                      "reason": result.reason, "reused": state == "Cached" or result.reused,
                      "outputs": sorted(result.outputs)})
    return {"scenario": plan.name, "verdict": verdict.status, "reasons": list(verdict.reasons), "steps": steps,
            "services": {app: {"ok": s.get("ok"), "detail": s.get("detail"), "url": s.get("url")}
                         for app, s in (services or {}).items()}}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:300]


def scenario_markdown(summary: Mapping[str, Any]) -> str:
    lines = [f"# Scenario {summary['scenario']}: {summary['verdict'].upper()}", ""]
    if summary["services"]:
        lines += ["| service | up | health check |", "|---|---|---|"]
        lines += [f"| {app} | {'yes' if s['ok'] else 'no'} | {_cell(s['detail'])} |"
                  for app, s in summary["services"].items()]
        lines.append("")
    lines += ["| step | app | state | outputs | reason |", "|---|---|---|---|---|"]
    for s in summary["steps"]:
        lines.append(f"| {s['name']} | {s['app']} | {s['state'] or s['status']} | {', '.join(s['outputs'])} | "
                     f"{_cell(s['reason'])} |")
    return "\n".join(lines) + "\n"
