"""Copy a whole store into another: SQLite to PostgreSQL (a gateway that scales out), back, or
between two of a kind (`hoop migrate`).

Every table the two schemas share is copied in primary-key order, with the columns they
share, in batches; recordings follow (recordings_dir files become `recording_chunks` rows of
a PostgreSQL store, or the reverse). PostgreSQL identity sequences are then set past the
copied ids, so the next row the gateway inserts does not collide. The audit chain is copied
row for row (ids, times and hashes as they were) and verified on the target at the end: a
copy that does not verify is reported as failed. The source is only read.

Nothing here holds back a running gateway: stop the gateways that write the source first,
or the copy misses what they write meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hoop.core import audit
from hoop.core.errors import HoopError
from hoop.core.store.base import Row, Store
from hoop.core.store.recordings import CHUNK_BYTES, INSERT_CHUNK, chunks, session_of, split
from hoop.core.store.sqlite import SqliteStore

# Not copied as rows: the schema's own bookkeeping (each side migrates itself), and recordings
# (copied as recordings, to chunks or files, below).
SKIP = {"schema_migrations", "recording_chunks"}
BATCH = 5000
# The files of a session's recording in recordings_dir.
RECORDING_FILE = re.compile(r"^\d+\.(hoop\.jsonl|cast|keyframes\.jsonl)$")


@dataclass
class Side:
    """A store and, where it keeps recordings as files, its recordings_dir."""

    store: Store
    recordings_dir: Path | None = None


@dataclass
class Copied:
    tables: dict[str, int] = field(default_factory=dict)  # rows copied per table
    recordings: int = 0  # files copied
    recording_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    chain: audit.VerifyResult | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.chain is not None and self.chain.ok


def tables(store: Store) -> dict[str, list[str]]:
    """Each table of the store (but SKIP) -> its columns, in order."""
    if isinstance(store, SqliteStore):
        names = store.db.table_names()
        return {n: [c.name for c in store.db[n].columns] for n in names if n not in SKIP}
    out: dict[str, list[str]] = {}
    for row in store.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        if row["table_name"] not in SKIP:
            out.setdefault(row["table_name"], []).append(row["column_name"])
    return out


def primary_key(store: Store, table: str) -> list[str]:
    if isinstance(store, SqliteStore):
        return list(store.db.table(table).pks)
    rows = store.query(
        "SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (table,),
    )
    return [r["name"] for r in rows]


def rows_in(store: Store, table: str) -> int:
    row = store.one(f'SELECT count(*) AS n FROM "{table}"')
    return int(row["n"]) if row else 0


def recording_files(side: Side) -> Iterator[tuple[int, str]]:
    """(session, file name) of every recording the side holds, in order."""
    if side.store.shared:
        for row in side.store.query("SELECT DISTINCT session_id, file FROM recording_chunks ORDER BY session_id, file"):
            yield int(row["session_id"]), str(row["file"])
    elif side.recordings_dir is not None and side.recordings_dir.is_dir():
        found = [(session_of(p.name), p.name) for p in side.recordings_dir.iterdir() if RECORDING_FILE.match(p.name)]
        yield from sorted((sid, name) for sid, name in found if sid is not None)


def is_empty(side: Side) -> list[str]:
    """What the target already holds (tables with rows, recordings): empty when it may be filled."""
    held = [f"{n} ({rows_in(side.store, n)} rows)" for n in tables(side.store) if rows_in(side.store, n)]
    if next(recording_files(side), None) is not None:
        held.append("recordings")
    return held


def empty(side: Side) -> None:
    """Remove every row (and recording) of the target, for `--replace`."""
    with side.store.transaction() as tx:
        for name in tables(side.store):
            tx.execute(f'DELETE FROM "{name}"')
        tx.execute("DELETE FROM recording_chunks")
    if not side.store.shared and side.recordings_dir is not None:
        for _, name in list(recording_files(side)):
            (side.recordings_dir / name).unlink()


def copy(source: Side, target: Side, *, progress: Callable[[str], None] = lambda _: None) -> Copied:
    """Copy everything of `source` into the (empty) `target` and verify the target's chain."""
    result = Copied()
    ours, theirs = tables(source.store), tables(target.store)
    for missing in sorted(set(ours) - set(theirs)):
        result.problems.append(f"table {missing} exists only in the source: not copied")
    for name in [n for n in ours if n in theirs]:
        columns = [c for c in ours[name] if c in theirs[name]]
        result.tables[name] = _copy_table(source.store, target, name, columns)
        progress(f"{name}: {result.tables[name]} rows")
    _set_sequences(target.store)
    _copy_recordings(source, target, result)
    progress(f"recordings: {result.recordings} files, {result.recording_bytes} bytes")
    for name, count in result.tables.items():
        if (held := rows_in(target.store, name)) != count:
            result.problems.append(f"table {name}: {count} rows copied but the target holds {held}")
    result.chain = audit.verify(target.store)
    if not result.chain.ok:
        result.problems.append(f"the audit chain does not verify on the target: {result.chain.problem}")
    return result


def _copy_table(source: Store, target: Side, name: str, columns: list[str]) -> int:
    order = ", ".join(f'"{c}"' for c in primary_key(source, name) or columns)
    cols = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT INTO "{name}" ({cols}) VALUES ({", ".join("?" for _ in columns)})'
    if isinstance(source, SqliteStore):  # sqlite-utils reads the SQLite side
        rows: Iterator[Row] = source.db.table(name).rows_where(select=cols, order_by=order)
    else:
        rows = source.stream(f'SELECT {cols} FROM "{name}" ORDER BY {order}')
    count = 0
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            count += _insert(target.store, name, insert, columns, batch)
            batch = []
    if batch:
        count += _insert(target.store, name, insert, columns, batch)
    return count


def _insert(store: Store, name: str, insert: str, columns: list[str], batch: list[Row]) -> int:
    if isinstance(store, SqliteStore):  # sqlite-utils, in one transaction per batch
        with store.lock:
            store.conn.execute("BEGIN IMMEDIATE")
            try:
                store.db.table(name).insert_all(_plain(batch), batch_size=len(batch))
            except BaseException:
                store.conn.execute("ROLLBACK")
                raise
            store.conn.execute("COMMIT")
        return len(batch)
    with store.transaction() as tx:
        tx.executemany(insert, [tuple(_value(row[c]) for c in columns) for row in batch])
    return len(batch)


def _plain(batch: list[Row]) -> list[Row]:
    return [{k: _value(v) for k, v in row.items()} for row in batch]


def _value(v: Any) -> Any:
    return bytes(v) if isinstance(v, memoryview) else v


def _set_sequences(store: Store) -> None:
    """PostgreSQL identity columns continue after the highest copied id (SQLite's INTEGER
    PRIMARY KEY does so by itself)."""
    if isinstance(store, SqliteStore):
        return
    for row in store.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ):
        table, column = row["table_name"], row["column_name"]
        store.query(
            f'SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max("{column}"), 0) + 1, false) FROM "{table}"',
            (f'"{table}"', column),
        )


def _copy_recordings(source: Side, target: Side, result: Copied) -> None:
    pending: list[tuple[int, str, int, bytes]] = []  # chunks for the target, stored in batches
    size = 0

    def store_pending() -> None:
        with target.store.transaction() as tx:
            tx.executemany(INSERT_CHUNK, pending)
        pending.clear()

    for sid, name in recording_files(source):
        data = _read_recording(source, sid, name)
        if target.store.shared:
            pending += [(sid, name, seq, piece) for seq, piece in enumerate(split(data))]
            size += len(data)
            if len(pending) >= 1000 or size >= 8 * CHUNK_BYTES:  # a transaction per batch, not per file
                store_pending()
                size = 0
        else:
            if target.recordings_dir is None:
                raise HoopError("the target keeps recordings as files: it needs a recordings directory")
            target.recordings_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            (target.recordings_dir / name).write_bytes(data)
        result.recordings += 1
        result.recording_bytes += len(data)
    if pending:
        store_pending()


def _read_recording(side: Side, sid: int, name: str) -> bytes:
    if side.store.shared:
        return b"".join(data for _, data in chunks(side.store, sid, name))
    assert side.recordings_dir is not None
    return (side.recordings_dir / name).read_bytes()
