"""What the gateway does while its records cannot be stored (`[gateway] on_record_failure`).

The journal keeps every record in memory and offers the failed batch again until the disk
takes it (see `Journal`); this decides what service goes on meanwhile:

- `refuse` (the default): nothing is served that would go unrecorded. Every door's next
  statement is refused with the reason (the pipeline halts: statements prepared earlier are
  judged again, so they are refused too), new logins are refused, and SSH sessions, whose
  terminal output is recorded as it flows, are ended. All resumes by itself, without a
  restart, once the journal stores again.
  A shared store that does not answer (seen by the heartbeat within seconds, before any
  record would be) is handled the same way, its message naming the store.
- `continue`: the operator chose availability over evidence; service goes on and the choice
  is logged at error level and audited, once per outage.
"""

from __future__ import annotations

import asyncio
import logging

from hoop.core.store.journal import Health
from hoop.core.store.records import CloseStatus
from hoop.server.services import Services, store_unreachable

log = logging.getLogger("hoop.gateway")
RULE = "recording-unavailable"


def unavailable(problem: str) -> str:
    return (
        f"recording unavailable: the gateway cannot store its records ({problem}); "
        "it refuses statements and logins until it can"
    )


class RecordingGuard:
    """Refuses service while either cause holds: the journal cannot store its records, or the
    heartbeat cannot reach a shared store (hoop/server/heartbeat.py), which tells of a lost
    store before the next record would; service resumes once neither holds."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self.loop = loop
        self.policy = services.config.gateway.on_record_failure
        self.problems: dict[str, str] = {}  # cause ("journal", "store") -> the reason refused

    def watch(self) -> None:
        """Follow the journal's health (reported from its thread) on the event loop."""

        def report(health: Health) -> None:
            self.loop.call_soon_threadsafe(self.changed, health)

        self.services.journal.on_health = report

    def changed(self, health: Health) -> None:
        if health.healthy:
            if self.problems.pop("journal", None) is not None:
                self.services.journal.audit("gateway", "recording.recovered", policy=self.policy)
                self._apply()
            return
        self.services.journal.audit("gateway", "recording.unavailable", problem=health.problem, policy=self.policy)
        self._fail("journal", unavailable(health.problem), health.problem)

    def store_changed(self, problem: str) -> None:
        """The heartbeat's view of the shared store: "" when it answers, else why not."""
        if not problem:
            if self.problems.pop("store", None) is not None:
                log.warning("the store answers again")
                self.services.journal.audit("gateway", "store.recovered", policy=self.policy)
                self._apply()
            return
        if "store" in self.problems:
            return
        self.services.journal.audit("gateway", "store.unavailable", problem=problem, policy=self.policy)
        self._fail("store", store_unreachable(problem), problem)

    def _fail(self, cause: str, reason: str, problem: str) -> None:
        self.problems[cause] = reason
        if cause == "store" and self.policy == "refuse":
            log.error("%s", reason)
        if self.policy == "continue":
            log.error(
                "%s (%s) and on_record_failure = continue: the gateway keeps serving; "
                "records wait in memory and are lost if it stops before they can be stored",
                "store unavailable" if cause == "store" else "recording unavailable",
                problem,
            )
            return
        self._apply()

    def _apply(self) -> None:
        """Refuse with the first cause that holds, or resume when none does."""
        services = self.services
        if self.policy == "continue":
            return
        if not self.problems:
            if services.refusing:
                log.warning("records can be stored again: statements and logins are accepted")
            services.refusing = ""
            services.pipeline.resume()
            return
        reason = next(iter(self.problems.values()))
        was = services.refusing
        services.refusing = reason
        services.pipeline.halt(RULE, reason)
        if was:
            return
        for live in list(services.live.values()):
            if live.protocol == "ssh":  # a terminal streams unrecorded output: it cannot go on
                services.journal.audit(
                    "gateway", "session.kill", live.connection, session=live.id, reason=reason, user=live.user
                )
                live.kill(reason, CloseStatus.KILLED)
