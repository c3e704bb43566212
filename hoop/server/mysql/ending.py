"""How a MySQL session's relay ends and records: a lost server, a malformed client packet, and
the one record of each command as it is answered (or cut off when the session ends first).
Kills are in holds.py, with the other actions across sessions."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from hoop.core.pipeline import Subject
from hoop.core.store.records import CloseStatus, StatementRecord, review
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.holds import DoorState
from hoop.server.mysql.response_events import Unit
from hoop.server.mysql.upstream import MySQLTarget
from hoop.server.session import Session

log = logging.getLogger("hoop.mysql")
CUT_OFF = "did not finish: the session ended"


class Ending:
    """Mixed into `Relay`, which provides the attributes below and `close` (from TwoSided)."""

    session: Session
    subject: Subject
    door: DoorState
    target: MySQLTarget
    units: deque[Unit]
    held_unit: Unit | None

    if TYPE_CHECKING:

        def close(self, status: CloseStatus, client_error: bytes | None = None) -> None: ...

    def _finish(self, unit: Unit) -> None:
        duration = ((unit.ended or time.time()) - unit.started) * 1000.0
        rows = unit.rows if unit.rows else unit.affected
        if rows is None and unit.kind == "result" and not unit.error and unit.reply is None:
            rows = 0  # an empty result set: its count is 0, not unknown
        self.session.finished(
            StatementRecord(
                unit.text,
                unit.decision,
                unit.rule,
                unit.started,
                duration,
                rows,
                unit.error,
                "",
                unit.columns,
                unit.sample,
            )
        )
        if unit.text[:12].lstrip().lower().startswith(("create", "alter", "drop", "rename")):
            self.door.routines.get(self.subject.connection, self.target).changed()  # routines may have changed
            self.door.lineage.of(self.subject.connection).invalidate()  # so may views and columns

    def cut_off(self) -> None:
        """The session ended: commands sent but not answered, or held, end here."""
        held, self.held_unit = self.held_unit, None
        if held is not None:  # it was waiting for approvers: never run now
            held.decision, held.error = review("abandoned"), CUT_OFF
            self._finish(held)
        while self.units:
            unit = self.units.popleft()
            if unit.record:
                unit.error = unit.error or (CUT_OFF if unit.reply is None else "")
                self._finish(unit)

    def upstream_lost(self) -> None:
        self.close(
            CloseStatus.UPSTREAM_LOST,
            c.encode_packet(
                p.build_err(2013, "HY000", f"connection {self.subject.connection}: the server closed the connection"),
                0,
            ),
        )

    def _protocol_error(self, problem: str) -> None:
        log.warning("session %s: malformed client packet: %s", self.session.id, problem)
        self.session.audit("session.protocol_error", problem=problem)
        self.close(CloseStatus.PROTOCOL_ERROR, c.encode_packet(p.build_err(1043, "08S01", f"bad packet: {problem}"), 0))
