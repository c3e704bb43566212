"""Fixtures shared by every test: real servers, a per-run PostgreSQL role, gateway processes."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.gateway import USERS_TOML, GatewayProcess, write_config  # noqa: E402
from support.postgres import PG_HOST, PG_PORT, pg_connection_toml  # noqa: E402
from support.servers import require  # noqa: E402
from support.stores import store, store_database, store_engine, store_target  # noqa: E402, F401


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[object]:
    """An autocommit superuser connection to the machine's PostgreSQL (database test)."""
    require(PG_HOST, PG_PORT, "PostgreSQL")
    import psycopg

    conn = psycopg.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="test", autocommit=True)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def pg_target(pg_admin: object) -> Iterator[dict[str, str]]:
    """A role and database created for this test run; the role's password is a canary."""
    suffix = secrets.token_hex(4)
    role, db = f"hoop_app_{suffix}", f"hoop_t_{suffix}"
    password = f"CANARY-pg-{secrets.token_hex(8)}"
    pg_admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")  # type: ignore[attr-defined]
    pg_admin.execute(f"CREATE DATABASE {db} OWNER {role}")  # type: ignore[attr-defined]
    yield {"role": role, "database": db, "password": password}
    pg_admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")  # type: ignore[attr-defined]
    pg_admin.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[attr-defined]


@pytest.fixture
def make_gateway(tmp_path: Path, pg_target: dict[str, str]) -> Iterator[object]:
    """Factory: make_gateway(extra_toml) -> a started GatewayProcess with users and the `pg` connection."""
    started: list[GatewayProcess] = []

    def make(
        extra: str = "", *, connections: str | None = None, listen: dict[str, int] | None = None, start: bool = True
    ) -> GatewayProcess:
        root = tmp_path / f"gw{len(started)}"
        root.mkdir()
        body = USERS_TOML + (connections if connections is not None else pg_connection_toml(pg_target)) + extra
        gw = write_config(root, body, listen=listen)
        gw.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
        started.append(gw)
        if start:
            gw.start()
        return gw

    yield make
    for gw in started:
        gw.stop()
