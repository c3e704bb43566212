"""Where a session's recording files live: in `recordings_dir` next to a SQLite store, or as
rows of `recording_chunks` in a PostgreSQL store that several gateways share, so that every
gateway and every TUI reads every recording.

A recording is named as its file would be (`<id>.hoop.jsonl`, `<id>.cast`,
`<id>.keyframes.jsonl`). In the store, each batch the journal writer stores adds one chunk per
file of a session (split at `CHUNK_BYTES`), numbered by `seq`, in the same transaction as the
batch's rows: the recording and the rows are stored together or not at all. The bytes of a
recording are its chunks joined in `seq` order, identical to what the file would hold.

Readers take paths (the recording and cast readers seek and stream); `LocalCopies` copies a
store's chunks into a private directory of this process, fetching only the chunks it has not
seen, so a live view of a growing recording costs one small query per refresh.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from hoop.core.store.base import Store, Tx

# One chunk row holds at most this many bytes: a batch that wrote more to one file (a burst of
# terminal output) is stored as several chunks. Small enough for any client to fetch at once.
CHUNK_BYTES = 1 << 20
INSERT_CHUNK = "INSERT INTO recording_chunks(session_id, file, seq, data) VALUES (?,?,?,?)"
# A seal of a recording kept in the store names it by this prefix and its file name.
STORE_PREFIX = "recording_chunks/"


def recording_name(session_id: int) -> str:
    return f"{session_id}.hoop.jsonl"


def name_of(row: dict[str, Any]) -> str:
    """The file name of a session row's database recording."""
    return Path(row["recording"]).name if row.get("recording") else recording_name(row["id"])


def split(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


# -- the journal writer's side: files, or chunks in the batch's transaction ------------------


def by_file(
    frames: list[tuple[int, Any]], recordings: dict[int, tuple[Any, ...]]
) -> dict[tuple[int, str], tuple[list[str], list[bytes]]]:
    """Each file's lines (the session's recording) or bytes (another of its files), in order."""
    out: dict[tuple[int, str], tuple[list[str], list[bytes]]] = {}
    for sid, value in frames:
        if isinstance(value, str):
            out.setdefault((sid, Path(recordings[sid][0]).name), ([], []))[0].append(value)
        else:
            out.setdefault((sid, value[0]), ([], []))[1].append(value[1])
    return out


def write_all(fh: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = fh.write(view)
        if not n:
            raise OSError("the recording file took no more bytes")
        view = view[n:]


def cut_back(written: list[tuple[BinaryIO, int]]) -> None:
    """Recording files back to their size before the failed batch: no half line stays."""
    for fh, size in written:
        try:
            os.ftruncate(fh.fileno(), size)
        except OSError:
            print(f"journal writer: could not cut {fh.name!r} back to {size} bytes", file=sys.stderr)


class ChunkWriter:
    """The journal writer's side: appends to files by inserting chunks inside the batch's
    transaction. Each session is written by one gateway's writer only (its ids are its own),
    so the next `seq` of a file is known here once read; it advances only when the batch
    commits (`committed`), so a refused batch is sent again with the same numbers."""

    def __init__(self) -> None:
        self._next: dict[tuple[int, str], int] = {}
        self._staged: dict[tuple[int, str], int] = {}

    def stage(self, tx: Tx, session_id: int, name: str, data: bytes) -> list[tuple[int, str, int, bytes]]:
        """The rows that store `data` as the next chunks of the file (the caller inserts every
        file's rows of a batch with one `INSERT_CHUNK` executemany: one round trip)."""
        key = (session_id, name)
        seq = self._staged.get(key, self._next.get(key))
        if seq is None:
            row = tx.execute(
                "SELECT coalesce(max(seq), -1) + 1 AS n FROM recording_chunks WHERE session_id = ? AND file = ?",
                (session_id, name),
            ).fetchone()
            seq = int(row["n"])
        pieces = split(data)
        self._staged[key] = seq + len(pieces)
        return [(session_id, name, seq + i, piece) for i, piece in enumerate(pieces)]

    def is_empty(self, tx: Tx, session_id: int, name: str) -> bool:
        key = (session_id, name)
        if key in self._staged or key in self._next:
            return self._staged.get(key, self._next.get(key)) == 0
        row = tx.execute(
            "SELECT 1 AS x FROM recording_chunks WHERE session_id = ? AND file = ? LIMIT 1", (session_id, name)
        ).fetchone()
        return row is None

    def committed(self) -> None:
        self._next.update(self._staged)
        self._staged.clear()

    def rolled_back(self) -> None:
        self._staged.clear()

    def forget(self, session_id: int) -> None:
        for key in [k for k in self._next if k[0] == session_id]:
            del self._next[key]


def chunks(store: Store, session_id: int, name: str, after: int = -1) -> Iterator[tuple[int, bytes]]:
    """(seq, bytes) of a file's chunks after `after`, in order."""
    for row in store.query(
        "SELECT seq, data FROM recording_chunks WHERE session_id = ? AND file = ? AND seq > ? ORDER BY seq",
        (session_id, name, after),
    ):
        yield int(row["seq"]), bytes(row["data"])


def session_of(name: str) -> int | None:
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def digest_chunks(store: Store, name: str, limit: int | None = None) -> tuple[str, int] | None:
    """SHA-256 and size of a recording kept in the store (of its first `limit` bytes), or None
    when the store holds none by that name."""
    sid = session_of(name)
    if sid is None:
        return None
    h, size, found = hashlib.sha256(), 0, False
    for _, data in chunks(store, sid, name):
        found = True
        if limit is not None:
            data = data[: max(0, limit - size)]
        h.update(data)
        size += len(data)
    return (h.hexdigest(), size) if found else None


def stored_size(store: Store, name: str) -> int | None:
    sid = session_of(name)
    if sid is None:
        return None
    row = store.one(
        "SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS size FROM recording_chunks "
        "WHERE session_id = ? AND file = ?",
        (sid, name),
    )
    return int(row["size"]) if row and row["n"] else None


class LocalCopies:
    """Paths to read a session's recording files by: the files themselves next to a SQLite
    store, or private copies of a shared store's chunks (made 0700, removed by `close`)."""

    def __init__(self, store: Store, recordings_dir: Path) -> None:
        self.store = store
        self.recordings_dir = recordings_dir
        self._dir: Path | None = None
        self._seen: dict[str, int] = {}  # file name -> last seq copied
        self._lock = threading.Lock()  # a TUI reads from several worker threads

    def path(self, name: str) -> Path | None:
        """The file's path, or None when there is no such recording (yet)."""
        if not self.store.shared:
            local = self.recordings_dir / name
            return local if local.exists() else None
        sid = session_of(name)
        if sid is None:
            return None
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="hoop-recordings-"))  # mode 0700
                atexit.register(shutil.rmtree, self._dir, True)
            copy = self._dir / name
            last = self._seen.get(name, -1)
            with copy.open("ab") as fh:
                for seq, data in chunks(self.store, sid, name, last):
                    fh.write(data)
                    last = seq
            self._seen[name] = last
            if last < 0:
                copy.unlink(missing_ok=True)
                return None
            return copy

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._seen.clear()
