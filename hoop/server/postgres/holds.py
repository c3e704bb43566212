"""Statements held for approval inside a live PostgreSQL session.

The held message and everything the client sends after it wait in the client framer; the
client's socket stays readable so a disconnect is noticed at once (the request is then
abandoned). So is the end of the client's input (a half-close): the statement is refused as
abandoned and what the client sent after it goes on. The decision either forwards the held
message unchanged or swaps it for the refusal marker, and the relay carries on with the
backlog.

A statement too big to classify on the event loop waits the same way while the parse pool
classifies it; then the relay handles the message again, from the framer, and judges it as
any other (it may still be forwarded, refused or held for approval).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from hoop.core.pipeline import Decision, Pipeline, Subject
from hoop.core.sql.textmode import TextMode
from hoop.server.postgres import codec, framing
from hoop.server.postgres.tracker import Tracker
from hoop.server.session import Session
from hoop.server.session.holds import HoldOutcome
from hoop.server.session.seams import Notify


class Holds:
    """Mixed into `Relay`: the parts of a session that wait for approvers. The relay provides
    the attributes below and `_refuse()` / `resume_client()`."""

    client: asyncio.Transport | None
    upstream: asyncio.Transport | None
    client_framer: framing.MessageFramer
    hold_task: asyncio.Future[None] | None
    pending_review: tuple[Decision, str, str, str] | None
    held_outcome: str
    closed: bool
    session: Session
    subject: Subject
    tracker: Tracker
    pipeline: Pipeline
    parsing: tuple[str, TextMode] | None = None  # set with HOLD: classify this text first
    parse_wait = False  # the session waits for the parse pool
    holding: tuple[Decision, str, str, str] | None = None  # what waits for approvers
    cancelled = False  # a CancelRequest came during that wait: the waiting statement is refused

    if TYPE_CHECKING:  # provided by the relay

        def resume_client(self) -> None: ...
        async def wait_for_approvers(self, text: str, decision: Decision, notify: Notify) -> HoldOutcome: ...
        def _refuse(
            self, decision: Decision | None, kind: str, name: str = "", sqlstate: str = "", message: str = ""
        ) -> bytes: ...

    def _start_hold(self, held: bytes, backlog: bytes) -> None:
        """Keep the statement (and everything after it) until an approver decides."""
        if self.parsing is not None:
            text, mode = self.parsing
            self.parsing = None
            self.client_framer.feed(held + backlog)  # all handled again once `text` is classified
            self.parse_wait = True
            self.hold_task = asyncio.ensure_future(self._parse_then_resume(text, mode))
            return
        # Reading goes on (a client that disconnects while held must be noticed at once);
        # what it sends meanwhile waits in the framer, up to one maximum message.
        self.client_framer.feed(backlog)
        assert self.pending_review is not None  # set with HOLD by the message handler
        self.holding = self.pending_review
        self.hold_task = asyncio.ensure_future(self._hold(held, *self.pending_review))

    async def _parse_then_resume(self, text: str, mode: TextMode) -> None:
        await self.pipeline.parse_ahead(self.subject, text, mode)
        if self.closed:
            return
        self.hold_task = None
        self.parse_wait = False
        self.resume_client()

    async def _hold(self, held: bytes, decision: Decision, text: str, kind: str, name: str) -> None:
        def notify(message: str) -> None:
            if self.client is not None and not self.client.is_closing():
                self.client.write(codec.notice_response("NOTICE", "01000", message))

        outcome = await self.wait_for_approvers(text, decision, notify)
        if self.closed:
            return
        self.holding = None
        unit = self.tracker.units[-1] if kind == "query" and self.tracker.units else None
        if unit is not None:
            unit.decision = outcome.decision
        self.held_outcome = outcome.decision
        if outcome.approved:
            forward = held
        else:
            sqlstate = "42501" if outcome.refusal == "denied" else "57014"
            forward = self._refuse(decision, kind, name, sqlstate=sqlstate, message=outcome.message)
        if self.upstream is not None:
            self.upstream.write(forward)
        self.hold_task = None
        self.resume_client()
