"""Prefect's own zombie-run detection: an automation that marks a flow run Crashed when its heartbeats stop.

Every flow run's engine emits ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
seconds (30 on Testpilot's work pool and in the CLI). This proactive trigger fires when a run that has
sent one sends neither another nor a final state within ``within`` seconds, and sets it Crashed. It
needs the server's triggers service (``prefect server start`` runs it); the reaper's own sweep
(``flows.maintenance.crash_zombies``) reaches the same verdict from the same events, so dead runs are
found with or without it.
"""

from __future__ import annotations

from datetime import timedelta

NAME = "testpilot-crash-zombie-runs"


def ensure_zombie_automation(within: float = 90.0) -> bool:
    """Create the automation unless it exists; True when it was created."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    try:
        Automation.read(name=NAME, _sync=True)  # type: ignore[call-overload]  # async_dispatch's switch
        return False
    except ValueError:
        pass  # not there yet
    Automation(
        name=NAME, description="A flow run whose heartbeats stopped (kill -9, a lost machine) is Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]}, for_each={"prefect.resource.id"},
            posture=Posture.Proactive, threshold=1, within=timedelta(seconds=within)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within:.0f}s: the process running it is gone")],
    ).create()
    return True
