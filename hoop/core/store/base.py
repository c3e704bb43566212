"""What every store offers: the SQLite file of one gateway, or a PostgreSQL database that
several gateways share (`[gateway] store`). Callers write SQL once, in SQLite's form; the
store rewrites it for its engine (dialect.py).

- `query`/`one` read, each in its own short transaction.
- `execute` runs one writing statement on its own and returns how many rows it changed.
- `transaction()` gives a `Tx` under the store's write serialisation (SQLite: BEGIN
  IMMEDIATE; PostgreSQL: a transaction, with `lock_audit()` serialising chain appends across
  gateways); everything in it commits or rolls back together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from hoop.core.secrets import Secret
from hoop.core.store.dialect import Dialect

Row = dict[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """A connection inside a write transaction. Rows read through it are mappings by column."""

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> None: ...

    def lock_audit(self) -> None:
        """Serialise audit-chain appends with every other writer until this transaction ends."""

    def lock_rules(self) -> None:
        """Serialise changes of the rule book (gateways seeding it as they start, admins saving
        through different gateways) until this transaction ends."""


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the work (connection lost, disk full): nothing
    of what was asked happened, and trying again later can work."""


class Store:
    dialect: Dialect
    # Which store this is, in a form that opens it again (`open_store`): a path, or a DSN
    # kept as a Secret because it may carry a password.
    target: Path | Secret

    @property
    def shared(self) -> bool:
        """Several gateways may write this store at once."""
        return False

    def describe(self) -> str:
        """Where the store is, for logs and messages: never a password."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[Row]:
        raise NotImplementedError

    def stream(self, sql: str, params: Iterable[Any] = ()) -> Iterator[Row]:
        """Rows one by one, for reads too long to hold in memory at once (a whole audit chain)."""
        raise NotImplementedError

    def one(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> int:
        with self.transaction() as tx:
            return tx.execute(sql, tuple(params) if not isinstance(params, dict) else params).rowcount

    def transaction(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def reopen(self) -> Store:
        """A second, independent handle on the same store (its own connection)."""
        return open_store(self.target)

    # -- users -------------------------------------------------------------------------------

    def upsert_user(self, name: str, groups: Iterable[str], source: str) -> None:
        now = time.time()
        self.execute(
            "INSERT INTO users(name, groups, source, created, updated) VALUES (?,?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET groups=excluded.groups, source=excluded.source, "
            "updated=excluded.updated",
            (name, json.dumps(sorted(set(groups))), source, now, now),
        )

    def user_groups(self, name: str) -> tuple[str, ...] | None:
        row = self.one("SELECT groups FROM users WHERE name = ?", (name,))
        return tuple(json.loads(row["groups"])) if row else None


def is_postgres_dsn(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def open_store(target: Path | Secret | str) -> Store:
    """The SQLite file at a path, or the PostgreSQL database a DSN names."""
    if isinstance(target, Secret) or (isinstance(target, str) and is_postgres_dsn(target)):
        from hoop.core.store.postgres import PostgresStore  # psycopg_pool only where it is used

        return PostgresStore(target if isinstance(target, Secret) else Secret(target))
    from hoop.core.store.sqlite import SqliteStore

    return SqliteStore(Path(target))
