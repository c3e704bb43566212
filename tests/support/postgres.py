"""The local PostgreSQL for end-to-end tests: the `[[connections]]` entry for a test run's
role and database (see the `pg_target` fixture), and sessions made directly on the server."""

from __future__ import annotations

from typing import Any

import psycopg

PG_HOST, PG_PORT = "127.0.0.1", 5432


def pg_connection_toml(target: dict[str, str], name: str = "pg", groups: str = '["dev"]', extra: str = "") -> str:
    """A `[[connections]]` entry for `target`; its password comes from HOOP_TEST_PG_PASSWORD.
    The local server offers no TLS and trusts loopback, so no secret is asked: sslmode is
    "disable" explicitly (the default, verify-full, would refuse a server without TLS)."""
    return f'''
[[connections]]
name = "{name}"
type = "postgres"
host = "127.0.0.1"
port = 5432
database = "{target["database"]}"
username = "{target["role"]}"
password = "${{HOOP_TEST_PG_PASSWORD}}"
sslmode = "disable"
groups = {groups}
{extra}
'''


def connect_target(target: dict[str, str], **kw: Any) -> psycopg.Connection[Any]:
    """The target role connected to the server directly (not through the gateway), autocommit."""
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=target["role"], dbname=target["database"], autocommit=True, **kw
    )


def on_server(target: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql` run as the target role directly on the server."""
    with connect_target(target) as conn:
        return conn.execute(sql).fetchall()
