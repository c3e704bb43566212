"""Several real `hoop serve` processes sharing one PostgreSQL store, for scale-out tests.

Each gateway has its own name, data_dir (control socket, keys), ports and log; they share the
store database (created for the test run, dropped after it) and the recordings directory.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from support.gateway import USERS_TOML, GatewayProcess, write_config
from support.postgres import PG_HOST, PG_PORT, pg_connection_toml
from support.servers import free_port


@dataclass
class Cluster:
    store_db: str
    gateways: dict[str, GatewayProcess] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{self.store_db}"

    def __getitem__(self, name: str) -> GatewayProcess:
        return self.gateways[name]

    def store(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of `sql` run straight on the shared store database (none for a write)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        for gw in self.gateways.values():
            gw.stop()


def json_rows(gw: GatewayProcess, *args: str) -> list[dict[str, Any]]:
    """`hoop ARGS --json` through `gw`'s config, parsed."""
    return list(json.loads(gw.cli(*args, "--json").stdout))


def wait_for(condition: Any, timeout: float = 10.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@contextmanager
def cluster(
    root: Path,
    pg_admin: Any,
    pg_target: dict[str, str],
    extra: str = "",
    names: tuple[str, ...] = ("a", "b"),
    *,
    body: str | None = None,
    doors: tuple[str, ...] = ("postgres",),
) -> Iterator[Cluster]:
    """Started gateways `names` on one new store database; stopped and dropped afterwards.
    Each has the test users and the `pg` connection (or `body` instead) plus `extra`, and
    listens with `doors` on free ports."""
    db = f"hoop_store_{secrets.token_hex(4)}"
    pg_admin.execute(f"CREATE DATABASE {db}")
    made = Cluster(db)
    shared = root / "recordings"
    try:
        for name in names:
            home = root / name
            home.mkdir()
            config = (USERS_TOML + pg_connection_toml(pg_target) if body is None else body) + extra
            settings = f'store = "{made.dsn}"\nname = "{name}"\n'
            listen = {door: free_port() for door in doors}
            gw = write_config(home, config, listen=listen, settings=settings, recordings=str(shared))
            gw.env["HOOP_TEST_PG_PASSWORD"] = pg_target["password"]
            made.gateways[name] = gw
        for gw in made.gateways.values():
            gw.start()
        yield made
    finally:
        made.stop()
        pg_admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
