"""What the gateway does while its records cannot be stored (`[gateway] on_record_failure`).

The journal keeps every record in memory and offers the failed batch again until the disk
takes it (see `Journal`); this decides what service goes on meanwhile:

- `refuse` (the default): nothing is served that would go unrecorded. Every door's next
  statement is refused with the reason (the pipeline halts: statements prepared earlier are
  judged again, so they are refused too), new logins are refused, and SSH sessions, whose
  terminal output is recorded as it flows, are ended. All resumes by itself, without a
  restart, once the journal stores again.
- `continue`: the operator chose availability over evidence; service goes on and the choice
  is logged at error level and audited, once per outage.
"""

from __future__ import annotations

import asyncio
import logging

from hoop.core.store.journal import Health
from hoop.core.store.records import CloseStatus
from hoop.server.services import Services

log = logging.getLogger("hoop.gateway")
RULE = "recording-unavailable"


def unavailable(problem: str) -> str:
    return (
        f"recording unavailable: the gateway cannot store its records ({problem}); "
        "it refuses statements and logins until it can"
    )


class RecordingGuard:
    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self.loop = loop
        self.policy = services.config.gateway.on_record_failure

    def watch(self) -> None:
        """Follow the journal's health (reported from its thread) on the event loop."""

        def report(health: Health) -> None:
            self.loop.call_soon_threadsafe(self.changed, health)

        self.services.journal.on_health = report

    def changed(self, health: Health) -> None:
        services = self.services
        if health.healthy:
            if services.refusing:
                log.warning("recording works again: statements and logins are accepted")
            services.refusing = ""
            services.pipeline.resume()
            services.journal.audit("gateway", "recording.recovered", policy=self.policy)
            return
        services.journal.audit("gateway", "recording.unavailable", problem=health.problem, policy=self.policy)
        if self.policy == "continue":
            log.error(
                "recording unavailable (%s) and on_record_failure = continue: the gateway keeps serving; "
                "records wait in memory and are lost if it stops before the disk recovers",
                health.problem,
            )
            return
        reason = unavailable(health.problem)
        services.refusing = reason
        services.pipeline.halt(RULE, reason)
        for live in list(services.live.values()):
            if live.protocol == "ssh":  # a terminal streams unrecorded output: it cannot go on
                services.journal.audit(
                    "gateway", "session.kill", live.connection, session=live.id, reason=reason, user=live.user
                )
                live.kill(reason, CloseStatus.KILLED)
