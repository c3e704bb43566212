"""A database of a test module's own on the local MariaDB (root without a password)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql

from support.servers import missing

ROOT = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@contextmanager
def throwaway_database(prefix: str, *statements: str) -> Iterator[str]:
    """Create `<prefix>_<random>`, run `statements` in it, yield its name, drop it afterwards.
    A server that does not answer is a failure under CI and a skip elsewhere."""
    try:
        root = pymysql.connect(**ROOT, autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        missing(f"MariaDB not available: {exc}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"USE `{name}`")  # MariaDB's seq_1_to_N tables are there too
            for sql in statements:
                cur.execute(sql)
        yield name
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()
