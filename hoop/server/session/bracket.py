"""`Session`: one client session through any door, from open to close (see the package
docstring for the steps)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hoop.core.identity import Identity
from hoop.core.pipeline import Decision, Subject
from hoop.core.sql import PreparedStatements, TextMode
from hoop.core.sql.textmode import UTF8
from hoop.core.store.records import BLOCK, CloseStatus, StatementRecord
from hoop.core.store.session_log import SessionLog
from hoop.server.services import LiveSession, Services
from hoop.server.session.holds import HoldOutcome
from hoop.server.session.seams import Killer, Notify


class Session:
    """The kit's handle on one session. Doors hold it; `log` is the journal's record of the
    session, whose counters (`bytes_in`, `bytes_out`) a door may bump on its hot path."""

    __slots__ = ("services", "subject", "log", "id", "protocol", "pipeline", "approvals", "status", "_kill", "_ending")

    def __init__(
        self,
        services: Services,
        identity: Identity,
        connection: str,
        protocol: str,
        client: str,
        *,
        dialect: str | None = None,
    ) -> None:
        self.services = services
        self.protocol = protocol
        self.subject = Subject(identity.name, identity.groups, connection, dialect or protocol)
        self.log: SessionLog = services.journal.open_session(identity.name, connection, protocol, client)
        self.id = self.log.id
        self.pipeline = services.pipeline
        self.approvals = services.approvals
        self.status: CloseStatus | None = None  # set once, when the session ends
        self._kill: Killer | None = None
        self._ending: CloseStatus | None = None  # set by kill(): how the session ends
        self.log.recording_limit = services.config.limits.recording_bytes_per_session
        self.log.on_full = self._recording_full

    @property
    def user(self) -> str:
        return self.subject.user

    @property
    def connection(self) -> str:
        return self.subject.connection

    # -- open and close ------------------------------------------------------------------------

    def start(self, kill: Killer, *, kind: str = "", **detail: Any) -> None:
        """Audit the start and list the session as live: from here approvers can watch it and
        `kill` ends it."""
        self._kill = kill
        self.log.audit("session.start", **({"kind": kind} if kind else {}), **detail)
        self.services.register(LiveSession(self.id, self.protocol, self.user, self.connection, self.kill, kind))

    def kill(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        """End the session from outside (an approver; the gateway stopping, with `shutdown`):
        the door tells its client, and the session ends with `status` whatever status the door
        reports as it closes."""
        if self.status is not None:
            return
        self._ending = status
        if self._kill is not None:
            self._kill(reason, status)
        self.close(status)

    def _recording_full(self) -> None:
        """The recording reached `recording_bytes_per_session`: the session ends (what it served
        so far is recorded; nothing more is served). On the next turn of the loop, not inside
        the door's call that recorded."""
        limit = self.services.config.limits.recording_bytes_per_session
        self.audit("session.recording_limit", limit=limit, recorded=self.log.recorded)
        reason = f"the session's recording reached its limit of {limit} bytes (recording_bytes_per_session)"
        asyncio.get_running_loop().call_soon(self.kill, reason, CloseStatus.KILLED)

    def close(self, status: CloseStatus, **detail: Any) -> None:
        """End the bracket; only the first call counts."""
        if self.status is not None:
            return
        self.status = status = self._ending or status
        self.services.unregister(self.id)
        self.log.audit("session.end", reason=status.value, **detail)
        self.log.close(status)

    # -- statements ----------------------------------------------------------------------------

    def judge(self, text: str, prepared: PreparedStatements | None = None, mode: TextMode = UTF8) -> Decision:
        return self.pipeline.check(self.subject, text, prepared, mode)

    async def hold(self, text: str, decision: Decision, notify: Notify) -> HoldOutcome:
        """Wait for approvers (or a standing grant). Cancelling the awaiting task abandons the
        request: it is never run later."""
        outcome = await self.approvals.hold(
            session=self.log, subject=self.subject, text=text, decision=decision, notify=notify
        )
        return HoldOutcome.of(outcome, decision.rule)

    def withdraw(self) -> None:
        """The client cancelled while held (CancelRequest, Ctrl-C): its requests are withdrawn
        and the waiting hold ends `cancelled`."""
        for approval_id in self.approvals.pending_for_session(self.id):
            self.approvals.withdraw(approval_id)

    def record(
        self,
        text: str,
        decision: str,
        rule: str = "",
        *,
        started: float,
        duration_ms: float | None = None,
        rows: int | None = None,
        error: str = "",
        tag: str = "",
        columns: list[str] | None = None,
        sample: list[Any] | None = None,
    ) -> None:
        """The one record of a finished statement (`duration_ms` defaults to until now)."""
        if duration_ms is None:
            duration_ms = (time.time() - started) * 1000.0
        record = StatementRecord(text, decision, rule, started, duration_ms, rows, error, tag, columns, sample)
        self.log.finished(record)

    def finished(self, record: StatementRecord) -> None:
        """`record` in the form a door's hot path builds it (positionally, no keywords)."""
        self.log.finished(record)

    def refused(self, text: str, decision: Decision, started: float | None = None) -> None:
        """Record a statement the policy blocked; the door words the refusal."""
        self.record(text, BLOCK, decision.rule, started=started or time.time(), duration_ms=0.0, error=decision.reason)

    def audit(self, action: str, **detail: Any) -> None:
        self.log.audit(action, **detail)

    def frame(self, kind: str, data: dict[str, Any]) -> None:
        self.log.frame(kind, data)
