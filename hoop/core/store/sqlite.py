"""The SQLite store: one file in data_dir, WAL mode, numbered migrations.

The running gateway is the single writer of sessions, statements and decisions; CLI commands
that change state (token issue/revoke) write small rows directly, which WAL and a busy
timeout make safe. Reads (the TUI, `hoop sessions`) never block the gateway.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from hoop.core.store.base import Row, Store, Tx
from hoop.core.store.dialect import SQLITE
from hoop.core.store.migrations import MIGRATIONS

SCHEMA_VERSION = MIGRATIONS[-1][0]


def connect(path: Path) -> sqlite3.Connection:
    # A data_dir made here (by `hoop token issue` before the first start, say) is private
    # from the start: access to it is the gateway's root of trust.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    _wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _wal(conn: sqlite3.Connection, tries: int = 100) -> None:
    """Switch a new file to WAL. Two processes opening a new file at once (the gateway starting
    while `hoop token issue` runs) can meet in the switch, where SQLite answers "database is
    locked" at once instead of waiting for the busy timeout: try again for a few seconds."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)


def migrate(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql, _ in MIGRATIONS:
            if version in done:
                continue
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> None:
        self.conn.executemany(sql, rows)

    def lock_audit(self) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's one write lock

    def lock_rules(self) -> None:
        pass  # likewise


class SqliteStore(Store):
    """Typed access to hoop.db. Thread-safe by a lock; callers batch where it matters."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = path
        self.conn = connect(path)
        migrate(self.conn)
        self.db = Database(self.conn)  # sqlite-utils, for whole-table copies (hoop migrate)
        self.lock = threading.RLock()

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self.conn.close()

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[Row]:
        args = params if isinstance(params, dict) else tuple(params)
        with self.lock:
            return [dict(row) for row in self.conn.execute(sql, args)]

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Row]:
        for row in self.conn.execute(sql, tuple(params)):  # its own cursor: no lock held between rows
            yield dict(row)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """BEGIN IMMEDIATE: serialised with every other writer of the file, across processes."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
