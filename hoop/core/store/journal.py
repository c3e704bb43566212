"""Batched writes of sessions, statements, audit events and recording frames.

The data path only appends to in-memory lists (a lock-protected `list.append`, well under a
microsecond). A writer thread flushes everything every `interval` seconds in one SQLite
transaction per table and one write per recording file, so a crash loses at most the last
interval and no query ever waits for the disk.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, TextIO

from hoop.core import audit, recording
from hoop.core.redact import redact_statement
from hoop.core.store.sqlite import Store


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
        self.status = "open"
        self.ended: float | None = None
        self.recording_path = journal.recordings_dir / f"{session_id}.hoop.jsonl"
        self._seq = 0
        self._dirty = True

    def frame(self, kind: str, data: dict[str, Any]) -> None:
        line = recording.encode_frame(time.time() - self.started, kind, data)
        self.journal._append("ordered", ("frame", (self, line)))

    def statement(
        self,
        text: str,
        decision: str,
        rule: str = "",
        started: float | None = None,
        duration_ms: float | None = None,
        rows: int | None = None,
        error: str = "",
    ) -> None:
        self._seq += 1
        self.statements += 1
        if decision == "block":
            self.blocked += 1
        self._dirty = True
        self.journal._append(
            "statements",
            {
                "session_id": self.id,
                "seq": self._seq,
                "started": started or time.time(),
                "duration_ms": duration_ms,
                "text": text,
                "decision": decision,
                "rule": rule,
                "rows": rows,
                "error": error,
            },
        )

    def finished(
        self,
        text: str,
        decision: str,
        rule: str,
        started: float,
        duration_ms: float,
        rows: int | None,
        error: str,
        tag: str = "",
        columns: list[str] | None = None,
        sample: list[Any] | None = None,
    ) -> None:
        """A statement is done: its row, its recording frames and its audit event, appended as
        one tuple; the writer thread does the formatting, so the data path pays one append."""
        self._seq += 1
        self.statements += 1
        if decision == "block":
            self.blocked += 1
        self._dirty = True
        self.journal._append(
            "ordered",
            ("done", (self, self._seq, text, decision, rule, started, duration_ms, rows, error, tag, columns, sample)),
        )

    def audit(self, action: str, target: str = "", **detail: Any) -> None:
        detail.setdefault("session", self.id)
        self.journal.audit(self.user, action, target or self.connection, **detail)

    def touch(self) -> None:
        self._dirty = True

    def close(self, status: str = "closed") -> None:
        if self.ended is not None:
            return
        self.status = status
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
        }


class Journal:
    def __init__(self, db_path: Path, recordings_dir: Path, interval: float = 0.2) -> None:
        # Its own connection: a flush never holds the lock readers on the event loop take.
        store = Store(db_path)
        self.store = store
        self.recordings_dir = recordings_dir
        recordings_dir.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self._lock = threading.Lock()
        # "ordered" keeps frames, audit events and finished statements in the order they
        # happened; the writer thread sorts them into files and tables.
        self._pending: dict[str, list[Any]] = {"ordered": [], "statements": [], "closed": []}
        self._open: dict[int, SessionLog] = {}
        self._files: dict[int, TextIO] = {}
        row = store.one("SELECT max(id) AS m FROM sessions")
        self._next_id = (row["m"] or 0) + 1 if row else 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hoop-journal", daemon=True)
        self._thread.start()

    # -- called from the event loop ---------------------------------------------------------

    def open_session(self, user: str, connection: str, protocol: str, client_addr: str) -> SessionLog:
        with self._lock:
            session_id = self._next_id
            self._next_id += 1
            log = SessionLog(self, session_id, user, connection, protocol, client_addr)
            self._open[session_id] = log
        log.frame("e", {"event": "start"})
        return log

    def open_sessions(self) -> list[SessionLog]:
        with self._lock:
            return list(self._open.values())

    def audit(self, actor: str, action: str, target: str = "", **detail: Any) -> None:
        self._append("ordered", ("audit", audit.AuditEvent(actor, action, target, detail, time.time())))

    def _append(self, kind: str, item: Any) -> None:
        with self._lock:
            self._pending[kind].append(item)

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            pending = self._pending
            self._pending = {k: [] for k in pending}
            dirty = [s for s in self._open.values() if s._dirty]
            for s in dirty:
                s._dirty = False
            for s in pending["closed"]:
                self._open.pop(s.id, None)
        frames, events = self._expand(pending)
        self._write_frames(frames)
        store = self.store
        with store.transaction() as conn:
            for s in dirty + pending["closed"]:
                row = s.row()
                conn.execute(
                    "INSERT INTO sessions(id, user, connection, protocol, client_addr, started, ended, status, "
                    "statements, blocked, held, bytes_in, bytes_out, recording) "
                    "VALUES (:id,:user,:connection,:protocol,:client_addr,:started,:ended,:status,:statements,"
                    ":blocked,:held,:bytes_in,:bytes_out,:recording) ON CONFLICT(id) DO UPDATE SET "
                    "ended=excluded.ended, status=excluded.status, statements=excluded.statements, "
                    "blocked=excluded.blocked, held=excluded.held, bytes_in=excluded.bytes_in, "
                    "bytes_out=excluded.bytes_out",
                    row,
                )
            if pending["statements"]:
                conn.executemany(
                    "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error) "
                    "VALUES (:session_id,:seq,:started,:duration_ms,:text,:decision,:rule,:rows,:error)",
                    pending["statements"],
                )
        if events:
            audit.append(store, events)
        for s in pending["closed"]:
            fh = self._files.pop(s.id, None)
            if fh is not None:
                fh.close()

    @staticmethod
    def _expand(pending: dict[str, list[Any]]) -> tuple[list[Any], list[Any]]:
        """Frames and audit events in the order they happened; finished statements become a
        row, two frames and an audit event here, on the writer thread, not on the data path."""
        frames: list[tuple[SessionLog, str]] = []
        events: list[audit.AuditEvent] = []
        rows = pending["statements"]
        for row in rows:  # written by SessionLog.statement()
            row["text"] = redact_statement(row["text"])
        for kind, item in pending["ordered"]:
            if kind == "frame":
                frames.append(item)
                continue
            if kind == "audit":
                if item.detail and isinstance(item.detail.get("text"), str):
                    item.detail["text"] = redact_statement(item.detail["text"])
                events.append(item)
                continue
            log, seq, text, decision, rule, started, ms, nrows, error, tag, columns, sample = item
            text = redact_statement(text)
            rows.append(
                {
                    "session_id": log.id,
                    "seq": seq,
                    "started": started,
                    "duration_ms": ms,
                    "text": text,
                    "decision": decision,
                    "rule": rule,
                    "rows": nrows,
                    "error": error,
                }
            )
            t = started - log.started
            frames.append((log, recording.encode_frame(t, "q", {"text": text, "decision": decision, "rule": rule})))
            result: dict[str, Any] = {"tag": tag, "rows": nrows, "ms": round(ms, 3), "error": error}
            if columns:
                result["columns"] = columns
            if sample:
                result["sample"] = sample
            frames.append((log, recording.encode_frame(t + ms / 1000.0, "r", result)))
            events.append(
                audit.AuditEvent(
                    log.user,
                    "statement",
                    log.connection,
                    {
                        "session": log.id,
                        "seq": seq,
                        "decision": decision,
                        "rule": rule,
                        "text": text[:2000],
                        "rows": nrows,
                        "error": error[:500],
                    },
                    started,
                )
            )
        return frames, events

    def _write_frames(self, frames: list[tuple[SessionLog, str]]) -> None:
        by_session: dict[int, list[str]] = {}
        logs: dict[int, SessionLog] = {}
        for log, line in frames:
            by_session.setdefault(log.id, []).append(line)
            logs[log.id] = log
        for sid, lines in by_session.items():
            fh = self._files.get(sid)
            if fh is None:
                log = logs[sid]
                fh = log.recording_path.open("a", encoding="utf-8")
                if fh.tell() == 0:
                    fh.write(recording.encode_header(log) + "\n")
                self._files[sid] = fh
            fh.write("\n".join(lines) + "\n")
            fh.flush()

    def close(self) -> None:
        for log in self.open_sessions():
            log.close("gateway-shutdown")
        self._stop.set()
        self._thread.join(timeout=10)
        self.store.close()
