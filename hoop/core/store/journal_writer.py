"""The journal's writer process: batches from the gateway become session rows, statement
rows, recording lines and hash-chained audit events.

Started by `Journal` as `python -m hoop.core.store.journal_writer DB`. It reads length-
prefixed batches on stdin (each names the recording files of its sessions) and answers each
with one byte on stdout once the batch is on disk (1 written, 0 failed, the traceback on
stderr). Formatting, redaction, hashing and SQLite work run here, in their own process, so
they never take the GIL from the event loop: with this work on a thread of the gateway, a
`SELECT 1` loop through the MySQL door ran at about 70% of the rate it reaches without
recording.

The batches are pickles: both ends are this package, on one machine, over a pipe nobody
else holds. The writer ignores SIGINT/SIGTERM (the gateway, its parent, decides when to
stop) and exits on end of input, so whatever the gateway sent before dying is written.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from hoop.core import audit, recording
from hoop.core.redact import redact_statement
from hoop.core.store.records import STATEMENT_RECORD_VERSION
from hoop.core.store.sqlite import Store

LENGTH = struct.Struct("<Q")
WRITTEN, FAILED = b"\x01", b"\x00"


def read_batch(stream: BinaryIO) -> bytes | None:
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        return None
    (size,) = LENGTH.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


class Writer:
    def __init__(self, db_path: Path) -> None:
        self.store = Store(db_path)
        self.files: dict[int, TextIO] = {}

    def write(self, batch: dict[str, Any]) -> None:
        frames, events, rows = self._expand(batch)
        self._write_frames(frames, batch["recordings"])
        with self.store.transaction() as conn:
            for row in batch["sessions"]:
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
            if rows:
                conn.executemany(
                    "INSERT INTO statements(session_id, seq, started, duration_ms, text, decision, rule, rows, error) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    rows,
                )
        if events:
            audit.append(self.store, events)
        for sid in batch["closed"]:
            fh = self.files.pop(sid, None)
            if fh is not None:
                fh.close()

    @staticmethod
    def _expand(batch: dict[str, Any]) -> tuple[list[tuple[int, str]], list[audit.AuditEvent], list[tuple[Any, ...]]]:
        """Frames and audit events in the order they happened; a finished statement (a
        `StatementRecord`) becomes a row, two frames and an audit event."""
        frames: list[tuple[int, str]] = []
        events: list[audit.AuditEvent] = []
        rows: list[tuple[Any, ...]] = []
        for item in batch["ordered"]:
            kind = item[0]
            if kind == "f":
                frames.append((item[1], item[2]))
                continue
            if kind == "a":
                ev = item[1]
                if ev.detail and isinstance(ev.detail.get("text"), str):
                    ev.detail["text"] = redact_statement(ev.detail["text"])
                events.append(ev)
                continue
            sid, user, connection, since, seq, fields = item[1:]
            if fields[-1] != STATEMENT_RECORD_VERSION:  # a record this writer cannot lay out
                print(f"journal writer: skipped a version {fields[-1]} statement record", file=sys.stderr)
                continue
            # A StatementRecord's fields, unpacked by name (cheaper than rebuilding the record).
            text, decision, rule, started, ms, nrows, error, tag, columns, sample, _ = fields
            text = redact_statement(text)
            rows.append((sid, seq, started, ms, text, decision, rule, nrows, error))
            t = started - since
            frames.append((sid, recording.encode_frame(t, "q", {"text": text, "decision": decision, "rule": rule})))
            result: dict[str, Any] = {"tag": tag, "rows": nrows, "ms": round(ms, 3), "error": error}
            if columns:
                result["columns"] = columns
            if sample:
                result["sample"] = sample
            frames.append((sid, recording.encode_frame(t + ms / 1000.0, "r", result)))
            detail = {
                "session": sid,
                "seq": seq,
                "decision": decision,
                "rule": rule,
                "text": text[:2000],
                "rows": nrows,
                "error": error[:500],
            }
            events.append(audit.AuditEvent(user, "statement", connection, detail, started))
        return frames, events, rows

    def _write_frames(self, frames: list[tuple[int, str]], recordings: dict[int, tuple[str, str]]) -> None:
        """`recordings`: the batch's id -> (path, header line) of every session it has frames for."""
        by_session: dict[int, list[str]] = {}
        for sid, line in frames:
            by_session.setdefault(sid, []).append(line)
        for sid, lines in by_session.items():
            fh = self.files.get(sid)
            if fh is None:
                path, header = recordings[sid]
                fh = Path(path).open("a", encoding="utf-8")
                if fh.tell() == 0:
                    fh.write(header + "\n")
                self.files[sid] = fh
            fh.write("\n".join(lines) + "\n")
            fh.flush()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.store.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Writing records is batch work: on a busy machine it yields the CPU to the data path
    # (clients, servers, the gateway's event loop) and catches up in the gaps.
    os.nice(10)
    writer = Writer(Path(argv[0]))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (data := read_batch(stdin)) is not None:
            try:
                writer.write(pickle.loads(data))
                answer = WRITTEN
            except Exception:  # one bad batch must not stop the recording of the next ones
                traceback.print_exc()
                answer = FAILED
            stdout.write(answer)
            stdout.flush()
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
