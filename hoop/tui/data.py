"""What the TUI reads from the store and what it asks the gateway to do.

Reads are small, paged, index-friendly queries (the store may hold 10,000s of sessions and
millions of statements): the TUI never loads a table whole. They run in worker threads and the
results travel to the screens as messages. Every mutation goes to the gateway's control
endpoint through `GatewayLink`; the TUI never writes the store.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hoop.core.roles import RoleSet
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store
from hoop.core.store.recordings import LocalCopies, recording_name

PAGE = 200
DECIDED_WINDOW = 600.0  # decided requests stay visible this long (seconds)


class Control(Protocol):
    """The one method of hoop.control_client.ControlClient the TUI uses."""

    def call(self, op: str, **params: Any) -> Any: ...


class GatewayLink:
    """Serialises control calls (one socket, called from worker threads) and remembers whether
    the gateway answered, so the app can say plainly when live actions are unavailable."""

    def __init__(self, client: Control | None) -> None:
        self.client = client
        self.lock = threading.Lock()

    def call(self, op: str, **params: Any) -> Any:
        from hoop.control_client import GatewayUnavailable

        if self.client is None:
            raise GatewayUnavailable("no token given (--token or HOOP_TOKEN)")
        with self.lock:
            return self.client.call(op, **params)


@dataclass
class Snapshot:
    """One poll of the store: what the Sessions and Approvals areas show."""

    taken: float
    live: list[dict[str, Any]] = field(default_factory=list)
    recent: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    decided: list[dict[str, Any]] = field(default_factory=list)


def sessions_in_scope(rows: list[dict[str, Any]], user: str | None, roles: RoleSet) -> list[dict[str, Any]]:
    """The sessions (rows with user and connection) that `user` (None: nobody known) with
    `roles` may see and replay: all for admins and auditors, an approver's connections, one's own."""
    if user is None:
        return []
    if roles.reads_all:
        return rows
    return [r for r in rows if r["user"] == user or roles.scope.covers(str(r["connection"]))]


def in_scope(snap: Snapshot, user: str | None, roles: RoleSet) -> Snapshot:
    """The part of `snap` that `user` (None: nobody known) with `roles` may see."""
    if user is None:
        return Snapshot(snap.taken)
    if roles.reads_all:
        return snap

    def request(row: dict[str, Any]) -> bool:
        return row["user"] == user or row["rule"] in roles.scope.rules

    return Snapshot(
        snap.taken,
        sessions_in_scope(snap.live, user, roles),
        sessions_in_scope(snap.recent, user, roles),
        [r for r in snap.pending if request(r)],
        [r for r in snap.decided if request(r)],
    )


class History:
    """Read-only queries over hoop.db (plus recordings_dir for samples)."""

    def __init__(self, store: Store, recordings_dir: Path) -> None:
        self.store = store
        self.recordings_dir = recordings_dir
        self.copies = LocalCopies(store, recordings_dir)  # recordings, from files or the store

    @classmethod
    def open(cls, target: Path | Secret, recordings_dir: Path) -> History:
        return cls(open_store(target), recordings_dir)

    # -- sessions and approvals -------------------------------------------------------------

    def snapshot(self, now: float, limit: int = PAGE) -> Snapshot:
        live = self.store.query("SELECT * FROM sessions WHERE ended IS NULL ORDER BY id DESC LIMIT ?", (limit,))
        recent = self.store.query("SELECT * FROM sessions ORDER BY id DESC LIMIT ?", (limit,))
        # Two reads: a session that ended between them is live in the first and ended in the
        # second; it is listed once, as live (the next poll shows it ended).
        live_ids = {r["id"] for r in live}
        recent = [r for r in recent if r["ended"] is not None and r["id"] not in live_ids]
        pending = self.store.query(
            "SELECT a.*, s.protocol FROM approvals a LEFT JOIN sessions s ON s.id = a.session_id "
            "WHERE a.status = 'pending' ORDER BY a.created DESC, a.id DESC LIMIT ?",
            (limit,),
        )
        # Decided requests are the newest ids that are not pending: walk back from the top id.
        decided = self.store.query(
            "SELECT a.*, s.protocol FROM approvals a LEFT JOIN sessions s ON s.id = a.session_id "
            "WHERE a.id > (SELECT coalesce(max(id), 0) - 200 FROM approvals) AND a.status != 'pending' "
            "AND a.decided > ? ORDER BY a.decided DESC LIMIT 50",
            (now - DECIDED_WINDOW,),
        )
        for row in pending + decided:
            row["approvers"] = json.loads(row["approvers"] or "[]")
            row["decisions"] = json.loads(row["decisions"] or "[]")
        return Snapshot(now, live, recent, pending, decided)

    def session(self, session_id: int) -> dict[str, Any] | None:
        return self.store.one("SELECT * FROM sessions WHERE id = ?", (session_id,))

    def statements_after(self, session_id: int, seq: int, limit: int = PAGE) -> list[dict[str, Any]]:
        return self.store.query(
            "SELECT * FROM statements WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?", (session_id, seq, limit)
        )

    def recent_statements(self, limit: int = PAGE) -> list[dict[str, Any]]:
        """The newest statements with their session's connection, user and protocol (by rowid)."""
        return self.store.query(
            "SELECT st.id, st.text, st.decision, s.user, s.connection, s.protocol FROM "
            "(SELECT * FROM statements ORDER BY id DESC LIMIT ?) st JOIN sessions s ON s.id = st.session_id "
            "ORDER BY st.id DESC",
            (limit,),
        )

    def search_sessions(self, text: str = "", limit: int = PAGE) -> list[dict[str, Any]]:
        """Recordings list: newest first; `text` matches user, connection, protocol, date or
        a statement. Statement text is scanned newest-first and stops at `limit` sessions."""
        text = text.strip()
        if not text:
            return self.store.query("SELECT * FROM sessions ORDER BY id DESC LIMIT ?", (limit,))
        like, d = f"%{text}%", self.store.dialect
        rows = self.store.query(
            f"SELECT * FROM sessions WHERE user {d.like()} ? OR connection {d.like()} ? OR protocol {d.like()} ? "
            f"OR {d.local_minute('started')} {d.like()} ? ORDER BY id DESC LIMIT ?",
            (like, like, like, like, limit),
        )
        seen = {r["id"] for r in rows}
        if len(rows) < limit:
            # The sessions of the newest matching statements, newest first (DISTINCT alone
            # keeps no order on PostgreSQL).
            hits = self.store.query(
                "SELECT session_id, max(id) AS newest FROM (SELECT id, session_id FROM statements "
                f"WHERE text {d.like()} ? ORDER BY id DESC LIMIT ?) hits GROUP BY session_id ORDER BY newest DESC",
                (like, limit * 20),
            )
            ids = [h["session_id"] for h in hits if h["session_id"] not in seen][: limit - len(rows)]
            if ids:
                marks = ",".join("?" * len(ids))
                rows += self.store.query(f"SELECT * FROM sessions WHERE id IN ({marks})", ids)
        return sorted(rows, key=lambda r: -r["id"])

    # -- rules --------------------------------------------------------------------------------

    def rules(self) -> list[dict[str, Any]]:
        from hoop.core.rulebook import RuleBook

        rows = RuleBook(self.store).latest_rows(include_deleted=False)
        for row in rows:
            row["body"] = json.loads(row["body"])
        return rows

    def sample_rows(self, session_id: int | None = None) -> Sample:
        """The last result rows recorded for a database session (the given one, or the newest
        whose recording holds a sample), with their columns and the statement they answered."""
        rows = self.store.query(
            "SELECT id, protocol FROM sessions WHERE protocol IN ('postgres', 'mysql') "
            + ("AND id = ? " if session_id else "")
            + "ORDER BY id DESC LIMIT 20",
            (session_id,) if session_id else (),
        )
        for row in rows:
            path = self.copies.path(recording_name(row["id"]))
            sample = _last_sample(path) if path is not None else Sample(None)
            if sample.rows:
                sample.session, sample.protocol = row["id"], row["protocol"]
                return sample
        return Sample(session_id)


@dataclass
class Sample:
    """Result rows recorded for a session: what a draft masking rule is previewed on."""

    session: int | None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    statement: str = ""  # the statement these rows answered
    protocol: str = "postgres"


def _last_sample(path: Path, tail: int = 256 * 1024) -> Sample:
    """Read only the end of a recording: the last "r" frame with sample rows, and the "q"
    frame of its statement before it."""
    if not path.exists():
        return Sample(None)
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - tail))
        lines = fh.read().splitlines()
    found: Sample | None = None
    for line in reversed(lines):
        try:
            frame = json.loads(line)
        except ValueError:
            continue
        if not (isinstance(frame, list) and len(frame) == 3 and isinstance(frame[2], dict)):
            continue
        if found is None and frame[1] == "r" and frame[2].get("sample"):
            data = frame[2]
            found = Sample(None, list(data.get("columns") or []), list(data["sample"]))
        elif found is not None and frame[1] == "q":
            found.statement = str(frame[2].get("text", ""))
            break
    return found or Sample(None)


def fmt_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
