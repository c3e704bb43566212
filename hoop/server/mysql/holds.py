"""Holds and kills of one MySQL session: the parts of the relay that act across time or
across sessions.

A held command waits for approvers while later commands stay in the client framer (reading
goes on, so a client that leaves is noticed at once, and so is the end of its input: the
command is then answered as abandoned and the later ones go on); the outcome either sends it
upstream or answers it with the denial in its turn. A kill ends a session from outside (an
administrator) or maps a client's `KILL [QUERY] <gateway id>` to the upstream thread of one
of the same Hoop user's sessions (named by the handshake's gateway id or by the server's
thread id that `CONNECTION_ID()` reports).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hoop.core.pipeline import Decision, Subject
from hoop.core.sql import PreparedStatements
from hoop.core.store.records import CloseStatus
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.lineage_catalog import MySQLLineage
from hoop.server.mysql.response_events import Unit
from hoop.server.mysql.upstream import MySQLTarget, UpstreamError, connect_upstream
from hoop.server.mysql.views import Views
from hoop.server.routine_watch import RoutineWatchers
from hoop.server.session import Session
from hoop.server.session.holds import HoldOutcome
from hoop.server.session.seams import Notify

log = logging.getLogger("hoop.mysql")
ER_DENIED = (1142, "42000")
ER_TIMEOUT = (1317, "70100")
# The one KILL the door runs itself: a whole statement naming one connection id.
# What handling a client command returns: the relay's HOLD marker (stop reading until a hold
# or a wait ends) or None (carry on with the next command).
Step = object | None
KILL_BY_ID = re.compile(r"\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(QUERY\s+|CONNECTION\s+)?(\d+)\s*;?\s*", re.I | re.A)


class DoorState(Protocol):
    """What a relay uses of the door that made it (listener.MySQLDoor), declared here so the
    relay's modules need not import the listener."""

    @property
    def relays(self) -> Mapping[int, HoldsAndKills]:
        """The door's live sessions by gateway connection id (for KILL)."""
        ...

    @property
    def views(self) -> Views:
        """Where view columns come from (for masking)."""
        ...

    @property
    def lineage(self) -> MySQLLineage:
        """Catalog and lineage caches per connection (for masking computed columns)."""
        ...

    @property
    def routines(self) -> RoutineWatchers:
        """The routine catalogs, told when DDL may have changed them."""
        ...


class HoldsAndKills:
    """Mixed into `Relay`, which provides the attributes below and `resume_client`, `close`,
    `_spawn`, `_allowed`, `_forward`, `_reply` and `_flush_replies`."""

    caps: int
    client: asyncio.Transport | None
    closed: bool
    door: DoorState
    hold_task: asyncio.Future[None] | None
    held_unit: Unit | None = None  # the command waiting for approvers
    prepared: PreparedStatements
    session: Session
    subject: Subject
    target: MySQLTarget
    units: deque[Unit]
    upstream_id: int
    gateway_id: int

    if TYPE_CHECKING:  # provided by the relay

        def close(self, status: CloseStatus, client_error: bytes | None = None) -> None: ...
        def resume_client(self) -> None: ...
        async def wait_for_approvers(self, text: str, decision: Decision, notify: Notify) -> HoldOutcome: ...
        def _spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
        def _allowed(self, seq: int, payload: bytes, unit: Unit, decision: Decision) -> Step: ...
        def _forward(self, seq: int, payload: bytes, unit: Unit | None) -> Step: ...
        def _reply(self, seq: int, unit: Unit, code: int, sqlstate: str, message: str) -> Step: ...
        def _flush_replies(self) -> None: ...

    def kill(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        if not self.closed:
            self._spawn(self.interrupt(query_only=False))
        if status is CloseStatus.SHUTDOWN:  # ER_SERVER_SHUTDOWN, as the server itself says it
            err = p.build_err(1053, "08S01", f"Server shutdown in progress: {reason}")
        else:
            err = p.build_err(1927, "70100", f"Connection was killed by an administrator: {reason}")
        self.close(status, c.encode_packet(err, 0))

    async def interrupt(self, query_only: bool = True) -> None:
        """KILL [QUERY] our upstream thread over a short side connection with the same target."""
        try:
            side = await connect_upstream(self.target)
        except UpstreamError as exc:
            log.warning("session %s: cannot interrupt upstream: %s", self.session.id, exc.message)
            return
        try:
            verb = "KILL QUERY" if query_only else "KILL CONNECTION"
            side.writer.write(c.encode_packet(p.build_com_query(f"{verb} {self.upstream_id}"), 0))
            async with asyncio.timeout(5):
                await side.reader.read(1024)
        except (OSError, TimeoutError):
            pass
        finally:
            await side.close()

    def _kill(self, seq: int, payload: bytes, thread_id: int, query_only: bool, text: str) -> Step:
        unit = Unit(text, "single", "allow", "kill")
        # The id the handshake gave (the gateway's) or the one CONNECTION_ID() reports (the
        # server's), of a live session of the same Hoop user through this door; any other
        # number is unknown, as the server says for any id it does not know.
        mine = [
            r
            for r in self.door.relays.values()
            if r.subject.user == self.subject.user and thread_id in (r.gateway_id, r.upstream_id)
        ]
        if len(mine) != 1:
            why = "" if not mine else " (it names several of your sessions on different servers; use the gateway id)"
            return self._reply(seq, unit, 1094, "HY000", f"Unknown thread id: {thread_id}{why}")
        target = mine[0]
        target.session.audit("statement.kill", by_session=self.session.id, query_only=query_only)
        if target.target.name == self.target.name and target is not self:
            verb = "KILL QUERY" if query_only else "KILL CONNECTION"
            return self._forward(0, p.build_com_query(f"{verb} {target.upstream_id}"), unit)
        self._spawn(target.interrupt(query_only))
        unit.reply = c.encode_packet(p.build_ok(p.OkPacket(), self.caps), seq + 1)
        self.units.append(unit)
        if len(self.units) == 1:
            self._flush_replies()
        return None

    # -- approvals ---------------------------------------------------------------------------

    def _start_hold(self, seq: int, payload: bytes, unit: Unit, decision: Decision) -> None:
        # Reading goes on, so a client that disconnects while held is noticed at once and the
        # request abandoned; what it sends meanwhile waits in the framer (bounded below).
        self.held_unit = unit
        self.hold_task = asyncio.ensure_future(self._hold(seq, payload, unit, decision))

    async def _hold(self, seq: int, payload: bytes, unit: Unit, decision: Decision) -> None:
        def notify(message: str) -> None:
            # The MySQL protocol has no asynchronous notice: the wait is audited, and logged
            # from that record like every door's (hoop/server/event_log.py).
            return None

        outcome = await self.wait_for_approvers(unit.text, decision, notify)
        if self.closed:
            return
        self.hold_task = self.held_unit = None
        unit.decision = outcome.decision
        if outcome.approved:
            if decision.classification is not None:
                # An approved `PREPARE s FROM ...` now names the approved statement: each
                # EXECUTE s is judged (and held) by that body, not by what s named before.
                self.prepared.observe(decision.classification)
            self._allowed(seq, payload, unit, Decision("allow", decision.rule, outcome.reason))
        else:
            code, state = ER_DENIED if outcome.refusal == "denied" else ER_TIMEOUT
            self._reply(seq, unit, code, state, outcome.message)
        self.resume_client()


def runs_kill(decision: Decision) -> bool:
    """A statement that runs KILL: `HoldsAndKills._kill` maps its gateway id to the upstream one, or it is refused;
    it never goes upstream as written."""
    return decision.classification is not None and any(s.kind == "kill" for s in decision.classification.statements)
