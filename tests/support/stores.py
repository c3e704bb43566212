"""The store test suite runs on both engines: `store_target` is a fresh SQLite file, or a
fresh, empty PostgreSQL schema reached through a DSN that opens it (`open_store(target)`).

PostgreSQL: one database per test session, owned by a role made for the run; each test gets
its own schema in it (the DSN's `options=-csearch_path=...`), so a test sees only its own
tables and nothing is left behind. Measured here, a fresh schema and the migrations take
0.13 s, a fresh database from a template 0.42 s. The role has a password, used in every DSN:
a canary that must never show up in a message, a log line, a process's argv or a stored row.
A missing PostgreSQL is a skip on a developer's machine and a failure under CI (`require`).
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from hoop.core.secrets import Secret
from hoop.core.store.base import Row, Store, open_store
from support.postgres import PG_HOST, PG_PORT
from support.servers import require

ENGINES = ("sqlite", "postgresql")
_schemas = itertools.count(1)


@dataclass(frozen=True)
class StoreDatabase:
    """The run's PostgreSQL store database, its owner role and that role's (canary) password."""

    admin: psycopg.Connection[tuple[object, ...]]
    database: str
    role: str
    password: str

    def dsn(self, schema: str | None = None, *, password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        dsn = f"postgresql://{self.role}:{secret}@{PG_HOST}:{PG_PORT}/{self.database}"
        return dsn + (f"?options=-csearch_path%3D{schema}" if schema else "")

    def new_schema(self) -> str:
        schema = f"s_{os.getpid()}_{next(_schemas)}"
        self.admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {self.role}")
        return schema

    def drop_schema(self, schema: str) -> None:
        self.admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def store_database() -> Iterator[StoreDatabase]:
    require(PG_HOST, PG_PORT, "PostgreSQL")
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    role, database = f"hoop_store_owner_{suffix}", f"hoop_store_{suffix}"
    password = f"CANARY-store-{secrets.token_hex(8)}"
    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test", autocommit=True)
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    admin.execute(f"CREATE DATABASE {database} OWNER {role}")
    # Schemas are made and dropped inside the store database, by its owner's superuser.
    inside = psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=database, autocommit=True)
    try:
        yield StoreDatabase(inside, database, role, password)
    finally:
        inside.close()
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


@pytest.fixture(params=ENGINES)
def store_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_target(store_engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path | Secret]:
    """What `open_store` opens: tmp_path/hoop.db, or a DSN (a Secret) naming a fresh schema."""
    if store_engine == "sqlite":
        yield tmp_path / "hoop.db"
        return
    db: StoreDatabase = request.getfixturevalue("store_database")
    schema = db.new_schema()
    try:
        yield Secret(db.dsn(schema))
    finally:
        db.drop_schema(schema)


@contextmanager
def opened(target: Path | Secret) -> Iterator[Store]:
    """A store of its own on `target` (a second handle, as another process would have one)."""
    store = open_store(target)
    try:
        yield store
    finally:
        store.close()


def rows(target: Path | Secret, sql: str, *params: Any) -> list[Row]:
    with opened(target) as store:
        return store.query(sql, params)


@pytest.fixture
def store(store_target: Path | Secret) -> Iterator[Store]:
    """An open store on `store_target`, closed after the test."""
    with opened(store_target) as s:
        yield s


def columns(store: Store) -> dict[str, set[str]]:
    """Every table of the store and its columns, read from the engine's own catalogue."""
    if store.dialect.name == "sqlite":
        names = [r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {c["name"] for c in store.query(f"SELECT name FROM pragma_table_info('{t}')")} for t in names}
    found: dict[str, set[str]] = {}
    for r in store.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        found.setdefault(r["table_name"], set()).add(r["column_name"])
    return found


def everything_stored(store: Store) -> str:
    """Every row of every table as text (bytes as they are and decoded): what a reader of the
    store could see."""
    parts = []
    for table in sorted(columns(store)):
        for row in store.query(f'SELECT * FROM "{table}"'):
            for value in row.values():
                if isinstance(value, (bytes, memoryview)):
                    value = bytes(value).decode("utf-8", "replace")
                parts.append(f"{table}: {value}")
    return "\n".join(parts)


def recorded(journal: Any, session: Any) -> Path:
    """A readable copy of a journaled session's database recording, wherever the store keeps
    it: the file itself beside a SQLite store, a copy of a shared store's chunks otherwise."""
    from hoop.core.store.recordings import LocalCopies, recording_name

    with opened(journal.target) as store:
        path = LocalCopies(store, journal.recordings_dir).path(recording_name(session.id))
    assert path is not None, f"session {session.id} has no recording"
    return path
