"""One client session's side of the journal: counts, recording size, and the records it
appends (statements, frames, terminal casts, audit events) for the journal's writer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hoop.core.store.records import OPEN, CloseStatus, StatementRecord

if TYPE_CHECKING:
    from hoop.core.store.journal import Journal

# What a statement record or a frame adds to a recording besides its statement text (the JSON
# keys, times, outcome, a result sample's share): counted against recording_bytes_per_session.
STATEMENT_COST = 256
FRAME_COST = 128


class SessionLog:
    """Everything one client session writes. Created by `Journal.open_session`."""

    __slots__ = (
        "journal",
        "id",
        "user",
        "connection",
        "protocol",
        "client_addr",
        "started",
        "statements",
        "blocked",
        "held",
        "bytes_in",
        "bytes_out",
        "status",
        "ended",
        "recording_path",
        "recorded",
        "recording_limit",
        "on_full",
        "_seq",
        "_dirty",
    )

    def __init__(
        self, journal: Journal, session_id: int, user: str, connection: str, protocol: str, client_addr: str
    ) -> None:
        self.journal = journal
        self.id = session_id
        self.user = user
        self.connection = connection
        self.protocol = protocol
        self.client_addr = client_addr
        self.started = time.time()
        self.statements = self.blocked = self.held = 0
        self.bytes_in = self.bytes_out = 0
        self.status = OPEN
        self.ended: float | None = None
        self.recording_path = journal.recordings_dir / f"{session_id}.hoop.jsonl"
        # Bytes recorded so far (statement texts plus a fixed cost per record, terminal casts as
        # written): past `recording_limit`, `on_full` is called once to end the session.
        self.recorded = 0
        self.recording_limit = 1 << 62
        self.on_full: Callable[[], None] | None = None
        self._seq = 0
        self._dirty = True

    def frame(self, kind: str, data: dict[str, Any]) -> None:
        """A recording frame; encoded by the writer, which also copes with text that no
        encoder takes (bytes that are not UTF-8)."""
        self.journal._append("ordered", ("f", self, time.time() - self.started, kind, data))
        self.grew(FRAME_COST)

    def finished(self, record: StatementRecord) -> None:
        """A statement is done: its row, its recording frames and its audit event go to the
        writer as one record; the writer process does the formatting, so the data path pays
        one append."""
        self._seq += 1
        self.statements += 1
        self.recorded += len(record.text) + STATEMENT_COST
        if self.recorded > self.recording_limit:
            self._full()
        if record.decision == "block":
            self.blocked += 1
        self._dirty = True
        self.journal._append("ordered", ("d", self, self._seq, record))
        if (observe := self.journal.on_statement) is not None:
            observe(self, record)
        if self.ended is not None:  # a statement that ended with its session: its counts go out again
            self.journal._append("closed", self)

    def append_file(self, name: str, data: bytes) -> None:
        """Bytes of another of this session's recording files (a terminal cast), stored by the
        writer with the session's next batch: how casts reach a shared store's chunks."""
        self.journal._append("ordered", ("c", self, name, data))

    def grew(self, size: int) -> None:
        """`size` more bytes of this session's recording."""
        self.recorded += size
        if self.recorded > self.recording_limit:
            self._full()

    def _full(self) -> None:
        on_full, self.on_full = self.on_full, None
        if on_full is not None:
            on_full()

    def audit(self, action: str, target: str = "", **detail: Any) -> None:
        detail.setdefault("session", self.id)
        self.journal.audit(self.user, action, target or self.connection, **detail)

    def touch(self) -> None:
        self._dirty = True

    def close(self, status: str = CloseStatus.CLOSED) -> None:
        if self.ended is not None:
            return
        self.status = str(status)  # a plain str: SQLite binds no str subclasses
        self.ended = time.time()
        self._dirty = True
        self.journal._append("closed", self)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "connection": self.connection,
            "protocol": self.protocol,
            "client_addr": self.client_addr,
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
            "statements": self.statements,
            "blocked": self.blocked,
            "held": self.held,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "recording": str(self.recording_path),
            "gateway": self.journal.gateway,
        }
