"""How a PostgreSQL session's relay ends and records: a kill, a lost or misbehaving server, a
malformed client message, and the one record of each statement as it finishes (or is cut off
when the session ends first)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from hoop.core.pipeline import Decision, Subject
from hoop.core.store.records import CloseStatus, StatementRecord
from hoop.server.postgres import codec
from hoop.server.postgres.tracker import Tracker, Unit
from hoop.server.session import Session

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from hoop.server.postgres.results import Results

log = logging.getLogger("hoop.postgres")
DDL_WORDS = ("alter", "drop", "create")


class Ending:
    """Mixed into `Relay`, which provides the attributes below and `close` (from TwoSided)."""

    session: Session
    subject: Subject
    tracker: Tracker
    results: Results
    holding: tuple[Decision, str, str, str] | None
    routines_changed: Callable[[], None]
    txn_texts: deque[str]  # statements of the open transaction (its notifications come at COMMIT)
    upstream_fatal: bool  # the server sent a FATAL error: it closes the connection next

    if TYPE_CHECKING:

        def close(self, status: CloseStatus, client_error: bytes | None = None) -> None: ...

    def kill(self, reason: str, status: CloseStatus = CloseStatus.KILLED) -> None:
        # 57P01 is admin_shutdown: what PostgreSQL itself sends for a kill and a shutdown.
        gateway_side = status in (CloseStatus.SHUTDOWN, CloseStatus.INTERRUPTED)
        said = "terminating connection" if gateway_side else "session terminated by an administrator"
        self.close(status, codec.error_response("FATAL", "57P01", f"{said}: {reason}"))

    def _upstream_protocol_error(self, problem: str) -> None:
        self.close(
            CloseStatus.UPSTREAM_ERROR,
            codec.error_response(
                "FATAL", "08P01", f"connection {self.subject.connection}: server sent invalid data: {problem}"
            ),
        )

    def _finish_unit(self, unit: Unit) -> None:
        duration = (time.time() - unit.started) * 1000.0
        self.txn_texts.append(unit.text)
        if unit.text[:12].lstrip().lower().startswith(DDL_WORDS):
            self.results.resolver.invalidate()  # column names may have changed
            self.routines_changed()
        self.session.finished(
            StatementRecord(
                unit.text,
                unit.decision,
                unit.rule,
                unit.started,
                duration,
                unit.rows,
                unit.error,
                unit.tag,
                unit.columns,
                unit.sample,
            )
        )

    def cut_off(self) -> None:
        if self.holding is not None and self.holding[2] != "query":  # a held Bind: its Execute never ran
            decision, text = self.holding[0], self.holding[1]
            self.tracker.push(Unit(text, False, "review", decision.rule))
        self.tracker.cut_off()

    def upstream_lost(self) -> None:
        if self.upstream_fatal:  # the server said why it ends the session (pg_terminate_backend, shutdown)
            self.close(CloseStatus.UPSTREAM_LOST)  # a second error would read as a second result to libpq
            return
        self.close(
            CloseStatus.UPSTREAM_LOST,
            codec.error_response(
                "FATAL", "08006", f"connection {self.subject.connection}: the server closed the connection"
            ),
        )

    def _protocol_error(self, problem: str) -> None:
        log.warning("session %s: malformed client message: %s", self.session.id, problem)
        self.session.audit("session.protocol_error", problem=problem)
        self.close(CloseStatus.PROTOCOL_ERROR, codec.error_response("FATAL", "08P01", f"invalid message: {problem}"))
