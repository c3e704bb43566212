"""The SQLite store: one file in data_dir, WAL mode, numbered migrations.

The running gateway is the single writer of sessions, statements and decisions; CLI commands
that change state (token issue/revoke) write small rows directly, which WAL and a busy
timeout make safe. Reads (the TUI, `hoop sessions`) never block the gateway.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from hoop.core.store.migrations import MIGRATIONS

SCHEMA_VERSION = MIGRATIONS[-1][0]


def connect(path: Path) -> sqlite3.Connection:
    # A data_dir made here (by `hoop token issue` before the first start, say) is private
    # from the start: access to it is the gateway's root of trust.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
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
    return max(v for v, _ in MIGRATIONS)


class Store:
    """Typed access to hoop.db. Thread-safe by a lock; callers batch where it matters."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)
        migrate(self.conn)
        self.db = Database(self.conn)
        self.lock = threading.RLock()

    def close(self) -> None:
        self.conn.close()

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(row) for row in self.conn.execute(sql, tuple(params))]

    def one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    # -- users -------------------------------------------------------------------------------

    def upsert_user(self, name: str, groups: Iterable[str], source: str) -> None:
        now = time.time()
        with self.lock:
            self.conn.execute(
                "INSERT INTO users(name, groups, source, created, updated) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET groups=excluded.groups, source=excluded.source, "
                "updated=excluded.updated",
                (name, json.dumps(sorted(set(groups))), source, now, now),
            )

    def user_groups(self, name: str) -> tuple[str, ...] | None:
        row = self.one("SELECT groups FROM users WHERE name = ?", (name,))
        return tuple(json.loads(row["groups"])) if row else None


class _Transaction:
    """`with store.transaction() as conn:` runs under BEGIN IMMEDIATE (serialised across processes)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store.lock.acquire()
        self.store.conn.execute("BEGIN IMMEDIATE")
        return self.store.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.store.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store.lock.release()
