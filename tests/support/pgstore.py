"""Store databases on the local PostgreSQL: one fresh database per test, dropped after it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from support.postgres import PG_HOST, PG_PORT

_numbers = itertools.count()


def store_dsn(db: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{db}"


@contextmanager
def store_database() -> Iterator[str]:
    """The DSN of a new, empty database for a PostgreSQL store."""
    db = f"hoop_store_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db}")
        try:
            yield store_dsn(db)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
