"""The journal's writer process: batches from the gateway become session rows, statement
rows, recording lines and hash-chained audit events.

Started by `Journal` as `python -m hoop.core.store.journal_writer DB`. It reads length-
prefixed batches on stdin (each names the recording files of its sessions) and answers each
on stdout once the batch is on disk: `WRITTEN`, or `FAILED` followed by a length-prefixed
reason. Formatting, statement masking, hashing and SQLite work run here, in their own process, so
they never take the GIL from the event loop: with this work on a thread of the gateway, a
`SELECT 1` loop through the MySQL door ran at about 70% of the rate it reaches without
recording.

What a batch cannot cost:
- **Other records.** Each record is laid out on its own; one that cannot be (a bug, a value
  no format takes) is stored as an error record in its place (`journal.error`). Text that is
  not UTF-8 is stored escaped with its exact bytes beside it (`wire_text`).
- **Itself.** A batch is written all or nothing: its recording lines first (cut back to where
  they were if anything later fails), then one SQLite transaction for its sessions,
  statements and audit events. When the disk refuses (full, read-only, I/O error) the answer
  is FAILED with the reason and the gateway keeps the batch and sends it again; when SQLite
  refuses one record (a constraint), the batch is written record by record and that one
  becomes an error record.

The batches are pickles: both ends are this package, on one machine, over a pipe nobody
else holds. The writer ignores SIGINT/SIGTERM (the gateway, its parent, decides when to
stop) and exits on end of input, so whatever the gateway sent before dying is written.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import struct
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from hoop.core import audit, audit_anchor, recording
from hoop.core.redact import redact_statement
from hoop.core.redact_stored import StoredStatementMasking
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, StoreUnavailable, open_store
from hoop.core.store.recordings import INSERT_CHUNK, ChunkWriter, by_file, cut_back, write_all
from hoop.core.store.records import STATEMENT_RECORD_VERSION
from hoop.core.store.wire_text import exact_bytes, is_storable, storable, storable_tree

LENGTH = struct.Struct("<Q")
WRITTEN, FAILED = b"\x01", b"\x00"
UNSTORED = "the journal could not store this record as sent"

# (session, line of its recording) or (session, (file name, bytes)): a terminal cast's bytes.
Frames = list[tuple[int, Any]]
Events = list[audit.AuditEvent]
Rows = list[tuple[Any, ...]]


def read_batch(stream: BinaryIO) -> bytes | None:
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        return None
    (size,) = LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


def refused_by_disk(exc: BaseException) -> bool:
    """Is this the storage failing (full, read-only, I/O, locked) rather than one record? Then
    writing the batch again later can work, and nothing in it is at fault."""
    if isinstance(exc, (OSError, MemoryError, StoreUnavailable)):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError)
    )


class Unwritable(Exception):
    """The storage refused the batch; nothing of it is stored."""


class Writer:
    def __init__(self, target: Path | Secret, anchor: audit_anchor.AnchorSettings | None = None) -> None:
        self.store: Store = open_store(target)
        self.files: dict[tuple[int, str], BinaryIO] = {}  # (session, file name) -> open file
        self._partial: tuple[int, int] | None = None  # (batch number, records stored) of a batch stored alone
        self.anchor = audit_anchor.Anchor(self.store, anchor) if anchor else None
        self.statement_text = StoredStatementMasking(self.store)
        # A shared store keeps recordings as chunks in the store, so every gateway reads them.
        self.chunks = ChunkWriter() if self.store.shared else None

    def write(self, batch: dict[str, Any]) -> None:
        self.statement_text.refresh(batch)
        sessions = [_storable_session(row) for row in batch["sessions"]]
        partial = self._partial
        if partial is not None and partial[0] == batch["number"]:
            self._store_one_by_one(batch, sessions, partial[1])  # the rest of a batch begun alone
        else:
            frames, events, rows = self._expand(batch["ordered"])
            try:
                self._store(frames, events, rows, sessions, batch["recordings"])
            except Exception as exc:
                if refused_by_disk(exc):
                    raise Unwritable(f"{type(exc).__name__}: {exc}") from exc
                self._store_one_by_one(batch, sessions, 0)
        for sid in batch["closed"]:
            for key in [key for key in self.files if key[0] == sid]:
                self.files.pop(key).close()
            if self.chunks is not None:
                self.chunks.forget(sid)
        if self.anchor is not None:  # seals the closed sessions' recordings; checkpoints the chain
            self.anchor.written(sessions, batch["closed"])

    # -- laying records out ----------------------------------------------------------------------

    def _expand(self, items: Iterable[tuple[Any, ...]]) -> tuple[Frames, Events, Rows]:
        """Frames and audit events in the order they happened; a finished statement becomes a
        row, two frames and an audit event. A record that cannot be laid out becomes an error
        record; the others are not touched by it."""
        frames: Frames = []
        events: Events = []
        rows: Rows = []
        for item in items:
            try:
                kind = item[0]
                if kind == "d":
                    _statement(item, frames, events, rows, self.statement_text)
                elif kind == "a":
                    events.append(self.statement_text.mask_event(audit.storable_event(item[1])))
                elif kind == "c":  # (kind, session, file name, bytes): terminal cast output
                    frames.append((item[1], (str(item[2]), bytes(item[3]))))
                else:  # "f": (kind, session, seconds since its start, frame kind, data)
                    frames.append((item[1], _frame(item[2], item[3], item[4])))
            except Exception as exc:
                _error_record(item, exc, events, rows)
        return frames, events, rows

    # -- storing them ------------------------------------------------------------------------

    def _store(
        self, frames: Frames, events: Events, rows: Rows, sessions: list[dict[str, Any]], recordings: Any
    ) -> None:
        """All or nothing: the recording lines, then one transaction; a failure in either cuts
        the recording files back to where they were. On a shared store the recording lines are
        chunks inserted in that same transaction."""
        if self.chunks is not None:
            try:
                with self.store.transaction() as conn:
                    self._chunk_frames(conn, frames, recordings)
                    conn.executemany(_UPSERT_SESSION, sessions)
                    if rows:
                        conn.executemany(_INSERT_STATEMENT, rows)
                    audit.chain(conn, events)
            except BaseException:
                self.chunks.rolled_back()
                raise
            self.chunks.committed()
            return
        written = self._write_frames(frames, recordings)
        try:
            with self.store.transaction() as conn:
                conn.executemany(_UPSERT_SESSION, sessions)
                if rows:
                    conn.executemany(_INSERT_STATEMENT, rows)
                audit.chain(conn, events)
        except BaseException:
            cut_back(written)
            raise

    def _store_one_by_one(self, batch: dict[str, Any], sessions: list[dict[str, Any]], start: int) -> None:
        """SQLite refused some record of the batch: each is stored alone, and one it refuses is
        stored as an error record instead. When the disk fails part way, the gateway sends the
        batch again and this goes on from the first record not stored (`_partial`)."""
        units: list[Any] = [("s", row) for row in sessions] + list(batch["ordered"])
        for index in range(start, len(units)):
            unit = units[index]
            if unit[0] == "s":
                self._store_alone([], [], [], [unit[1]], batch["recordings"], ("s", unit[1].get("id")))
            else:
                frames, events, rows = self._expand([unit])
                self._store_alone(frames, events, rows, [], batch["recordings"], unit)
            self._partial = (batch["number"], index + 1)
        self._partial = None

    def _store_alone(
        self, frames: Frames, events: Events, rows: Rows, sessions: list[dict[str, Any]], recordings: Any, item: Any
    ) -> None:
        try:
            self._store(frames, events, rows, sessions, recordings)
            return
        except Exception as exc:
            if refused_by_disk(exc):
                raise Unwritable(f"{type(exc).__name__}: {exc}") from exc
            events, rows = [], []
            _error_record(item, exc, events, rows)
        try:
            self._store([], events, rows, [], recordings)
        except Exception as exc:
            if refused_by_disk(exc):
                raise Unwritable(f"{type(exc).__name__}: {exc}") from exc
            # Not even its error record could be stored: the one record that is lost says so.
            print(f"journal writer: a record and its error record were refused: {exc!r}", file=sys.stderr)

    def _chunk_frames(self, conn: Any, frames: Frames, recordings: dict[int, tuple[Any, ...]]) -> None:
        assert self.chunks is not None
        rows = []
        for (sid, name), (lines, blobs) in by_file(frames, recordings).items():
            data = b"".join(blobs)
            if lines:
                if self.chunks.is_empty(conn, sid, name):
                    lines.insert(0, _header(sid, *recordings[sid][1:]))
                data = ("\n".join(lines) + "\n").encode()
            rows += self.chunks.stage(conn, sid, name, data)
        if rows:
            conn.executemany(INSERT_CHUNK, rows)

    def _write_frames(self, frames: Frames, recordings: dict[int, tuple[Any, ...]]) -> list[tuple[BinaryIO, int]]:
        """Append each session's lines with one write per file. `recordings`: the batch's id ->
        (path, protocol, user, connection, started) of every session it has frames for.
        Returns each file touched with its size before, to cut back to on failure."""
        written: list[tuple[BinaryIO, int]] = []
        try:
            for (sid, name), (lines, blobs) in by_file(frames, recordings).items():
                fh = self.files.get((sid, name))
                if fh is None:
                    folder = Path(recordings[sid][0]).parent
                    fh = self.files[(sid, name)] = (folder / name).open("ab", buffering=0)
                size = os.fstat(fh.fileno()).st_size
                written.append((fh, size))
                if lines and size == 0:
                    lines.insert(0, _header(sid, *recordings[sid][1:]))
                write_all(fh, b"".join(blobs) if blobs else ("\n".join(lines) + "\n").encode())
        except BaseException:
            cut_back(written)
            raise
        return written

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        if self.anchor is not None:
            self.anchor.close()
        self.store.close()


_UPSERT_SESSION = (
    "INSERT INTO sessions(id, user, connection, protocol, client_addr, started, ended, status, "
    "statements, blocked, held, bytes_in, bytes_out, recording, gateway) "
    "VALUES (:id,:user,:connection,:protocol,:client_addr,:started,:ended,:status,:statements,"
    ":blocked,:held,:bytes_in,:bytes_out,:recording,:gateway) ON CONFLICT(id) DO UPDATE SET "
    "ended=excluded.ended, status=excluded.status, statements=excluded.statements, "
    "blocked=excluded.blocked, held=excluded.held, bytes_in=excluded.bytes_in, "
    "bytes_out=excluded.bytes_out, gateway=excluded.gateway"
)
_INSERT_STATEMENT = (
    "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error, text_bytes) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)


def _statement(
    item: tuple[Any, ...], frames: Frames, events: Events, rows: Rows, statement_text: StoredStatementMasking
) -> None:
    sid, user, connection, since, seq, fields = item[1:]
    if fields[-1] != STATEMENT_RECORD_VERSION:  # a record this writer cannot lay out
        raise ValueError(f"statement record version {fields[-1]} (this writer reads {STATEMENT_RECORD_VERSION})")
    # A StatementRecord's fields, unpacked by name (cheaper than rebuilding the record).
    text, decision, rule, started, ms, nrows, error, tag, columns, sample, _ = fields
    raw = None
    if not is_storable(text):  # bytes that are not UTF-8: escaped here, exact in text_bytes
        raw, text = exact_bytes(text), storable(text)
    if not is_storable(error):
        error = storable(error)
    masked = statement_text.mask(text, sid, connection)
    text, error = masked.text, masked.scrub(error)
    if raw is not None and text != storable(raw.decode("utf-8", "surrogateescape")):
        raw = None  # masking changed the text: its raw bytes would carry what it removed
    t = started - since
    result: dict[str, Any] = {"tag": tag, "rows": nrows, "ms": round(ms, 3), "error": error}
    if columns:
        result["columns"] = columns
    if sample:
        result["sample"] = sample
    detail = {
        "session": sid,
        "seq": seq,
        "decision": decision,
        "rule": rule,
        "text": text[:2000],
        "rows": nrows,
        "error": error[:500],
    }
    # Built completely before anything is appended: a failure leaves no half record behind.
    q = _frame(t, "q", {"text": text, "decision": decision, "rule": rule})
    r = _frame(t + ms / 1000.0, "r", result)
    row = (sid, seq, started, ms, text, decision, rule, nrows, error, raw)
    event = audit.AuditEvent(user, "statement", connection, detail, started)
    if not (is_storable(user) and is_storable(connection)):
        event = audit.storable_event(event)
    rows.append(row)
    frames += ((sid, q), (sid, r))
    events.append(event)


def _frame(t: float, kind: str, data: dict[str, Any]) -> str:
    try:
        return recording.encode_frame(t, kind, data)
    except TypeError:  # text that is not UTF-8 (orjson refuses lone surrogates): escaped
        return recording.encode_frame(t, kind, storable_tree(data)[0])


def _header(sid: int, protocol: str, user: str, connection: str, started: float) -> str:
    return recording.encode_header(sid, protocol, storable(user), storable(connection), started)


def _error_record(item: Any, exc: BaseException, events: Events, rows: Rows) -> None:
    """What stands for a record that could not be stored as sent: for a statement, a row in
    its place (with what of it could be read) and an audit event naming the failure."""
    reason = storable(f"{type(exc).__name__}: {exc}")[:500]
    print(f"journal writer: {UNSTORED}: {reason}", file=sys.stderr)
    kind = item[0] if isinstance(item, tuple) and item else "?"
    detail: dict[str, Any] = {"record": {"d": "statement", "a": "audit", "f": "frame", "s": "session"}.get(kind, kind)}
    actor, target = "gateway", ""
    if kind == "d":
        sid, user, connection, _, seq, fields = item[1:]
        actor, target = storable(str(user)), storable(str(connection))
        text = redact_statement(storable(str(fields[0]))) if fields else ""
        decision = storable(str(fields[1])) if len(fields) > 1 else ""
        started = fields[3] if len(fields) > 3 and isinstance(fields[3], float) else time.time()
        rows.append((sid, seq, started, None, text, decision, "", None, f"{UNSTORED} ({reason})", None))
        detail.update(session=sid, seq=seq)
    elif kind == "a":
        detail["action"] = storable(str(getattr(item[1], "action", "?")))
    elif kind in ("f", "s", "c"):
        detail["session"] = item[1]
    detail["reason"] = reason
    events.append(audit.AuditEvent(actor, "journal.error", target, detail))


def _storable_session(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("user", "connection", "client_addr", "recording"):
        if not is_storable(row[key]):
            row[key] = storable(row[key])
    return row


def _answer(stdout: BinaryIO, ok: bool, reason: str = "") -> None:
    if ok:
        stdout.write(WRITTEN)
    else:
        text = reason.encode("utf-8", "backslashreplace")[:2000]
        stdout.write(FAILED + LENGTH.pack(len(text)) + text)
    stdout.flush()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Writing records is batch work: on a busy machine it yields the CPU to the data path
    # (clients, servers, the gateway's event loop) and catches up in the gaps.
    os.nice(10)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    target: Path | Secret = Path(argv[0])
    if argv[0] == "-":  # a DSN, sent first on stdin (an argv is visible to every local user)
        dsn = read_batch(stdin)
        if dsn is None:
            return 2
        target = Secret(dsn.decode())
    settings = audit_anchor.AnchorSettings.from_argv(argv[1:])
    writer: Writer | None = None
    try:
        while (data := read_batch(stdin)) is not None:
            try:
                # Opened at the first batch, and again at each batch until it opens: a writer
                # started while a shared store is down answers FAILED naming the store (the
                # gateway refuses service and offers the batch again) instead of exiting.
                if writer is None:
                    try:
                        writer = Writer(target, settings)
                    except StoreUnavailable as exc:
                        raise Unwritable(str(exc)) from None
                writer.write(pickle.loads(data))
            except (Unwritable, StoreUnavailable) as exc:  # the store refused: the batch is offered again
                _answer(stdout, False, str(exc))
            except Exception as exc:  # a bug: reported, and the batch is kept and sent again
                traceback.print_exc()
                _answer(stdout, False, f"{type(exc).__name__}: {exc}")
            else:
                _answer(stdout, True)
    finally:
        if writer is not None:
            writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
