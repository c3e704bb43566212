"""The PostgreSQL store: one database that several gateways share (`[gateway] store`).

A small psycopg connection pool per process; reads run in autocommit, writes in a
transaction. Migrations are the same numbered list as SQLite's, in PostgreSQL's own types
(migrations.py), applied under an advisory lock so gateways starting together migrate once.
Losing the server surfaces as `StoreUnavailable`: the caller refuses what it was doing (the
journal keeps its batch and reports itself unhealthy, like a full disk) and the pool
reconnects by itself once the server answers again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hoop.core.secrets import Secret
from hoop.core.store.base import Row, Store, StoreUnavailable, Tx
from hoop.core.store.dialect import POSTGRESQL
from hoop.core.store.migrations import MIGRATIONS

# Advisory lock keys (constants of our own): schema migrations, audit-chain appends, rule-book changes.
MIGRATE_LOCK = 0x686F6F70_0001
AUDIT_LOCK = 0x686F6F70_0002
RULES_LOCK = 0x686F6F70_0003
# How long a caller waits for a connection before the store counts as unavailable.
CONNECT_TIMEOUT = 5.0
# The store failing, not what was asked of it: connection lost, server shutting down, disk
# full, and a server that takes no writes for now (a standby during a failover). Trying
# again later can work, so the journal keeps its batch instead of turning records into errors.
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, psycopg.errors.ReadOnlySqlTransaction)


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages: never its password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql (an unreadable DSN)"
    return f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Row]:
        return self.conn.execute(POSTGRESQL.sql(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(POSTGRESQL.sql(sql), rows)

    def lock_audit(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))

    def lock_rules(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (RULES_LOCK,))


def _migrate(conn: psycopg.Connection[Row]) -> int:
    """The numbered migrations not yet applied, in one transaction, under an advisory lock:
    gateways starting together wait for the first one and then find nothing to do."""
    with conn.transaction():
        tx = _PgTx(conn)
        tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)"
        )
        done = {row["version"] for row in tx.execute("SELECT version FROM schema_migrations")}
        for version, _, sql in MIGRATIONS:
            if version in done:
                continue
            for statement in sql.split(";"):
                if statement.strip():
                    tx.execute(statement)
            tx.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
    return MIGRATIONS[-1][0]


class PostgresStore(Store):
    dialect = POSTGRESQL

    def __init__(self, dsn: Secret, *, max_size: int = 4) -> None:
        self.target = self._dsn = dsn
        self._where = describe_dsn(dsn.reveal())
        password = _password(dsn.reveal())
        if password:
            _LOG_SCRUB.secrets.add(password)  # the pool logs libpq's words when it reconnects
        try:
            conninfo_to_dict(dsn.reveal())
        except psycopg.ProgrammingError as exc:  # libpq may quote the whole DSN, password included
            raise StoreUnavailable(f"the store DSN cannot be read: {_reason(exc, dsn)}") from None
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "connect_timeout": int(CONNECT_TIMEOUT)}
        try:
            # One connection first: it migrates, and a store that cannot be reached says why at
            # once (a pool would only report, seconds later, that it did not fill).
            with psycopg.connect(dsn.reveal(), **kwargs) as conn:
                _migrate(conn)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"the store at {self._where} cannot be reached: {_reason(exc, dsn)}") from None
        self.pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            dsn.reveal(),
            min_size=1,
            max_size=max_size,
            kwargs=kwargs,
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced
            timeout=CONNECT_TIMEOUT,
            # The pool's retries of a lost connection back off exponentially (1, 2, 4 s...) for
            # this long, then start over from the shortest delay: a store that answers again
            # is used within seconds, not after a delay grown through a long outage.
            reconnect_timeout=CONNECT_TIMEOUT,
            name="hoop-store",
            open=False,
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except UNAVAILABLE as exc:
            self.pool.close()
            raise StoreUnavailable(f"the store at {self._where} cannot be reached: {_reason(exc, dsn)}") from None

    @property
    def shared(self) -> bool:
        return True

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self.pool.close()

    def migrate(self) -> int:
        with self.pool.connection() as conn:
            return _migrate(conn)

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[Row]:
        args = params if isinstance(params, dict) else tuple(params)
        try:
            with self.pool.connection() as conn:
                return conn.execute(POSTGRESQL.sql(sql), args or None).fetchall()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"the store at {self._where} is unavailable: {_reason(exc, self._dsn)}") from None

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Row]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                with conn.cursor(name="hoop_stream") as cur:  # a server-side cursor: fetched in pages
                    cur.itersize = 2000
                    cur.execute(POSTGRESQL.sql(sql), tuple(params) or None)
                    yield from cur
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"the store at {self._where} is unavailable: {_reason(exc, self._dsn)}") from None

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _PgTx(conn)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"the store at {self._where} is unavailable: {_reason(exc, self._dsn)}") from None

    def notify(self, channel: str, payload: str) -> None:
        """A NOTIFY to every gateway LISTENing on `channel` (delivered once this commits)."""
        self.execute("SELECT pg_notify(?, ?)", (channel, payload))


def _reason(exc: BaseException, dsn: Secret) -> str:
    """The first line of what went wrong, with the DSN and its password taken out."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _scrub(text, dsn.reveal())[:300]


def _password(dsn: str) -> str:
    try:
        return str(conninfo_to_dict(dsn).get("password") or "")
    except psycopg.ProgrammingError:  # unreadable: the password is what lies between : and @
        found = re.match(r"[a-z]+://[^:@/]*:([^@]*)@", dsn)
        return found.group(1) if found else ""


def _scrub(text: str, dsn: str) -> str:
    text = text.replace(dsn, "(the DSN)")
    password = _password(dsn)
    return text.replace(password, "****") if password else text


class _Scrub(logging.Filter):
    """Takes the stores' passwords out of what the connection pool logs."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            scrubbed = scrubbed.replace(secret, "****")
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_LOG_SCRUB = _Scrub()
for _name in ("psycopg", "psycopg.pool"):  # a logger's filter sees only its own records
    logging.getLogger(_name).addFilter(_LOG_SCRUB)
