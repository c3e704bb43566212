"""A side connection to one upstream PostgreSQL, opened with the held credential, for the
gateway's own catalog reads (result column names, routine bodies). It is kept open between
reads and opened again once when the server dropped it."""

from __future__ import annotations

from typing import Any

import psycopg

from hoop.server import upstream_tls


def side_kwargs(target: Any) -> dict[str, Any]:
    """psycopg connection arguments for `target` (an UpstreamTarget), named `hoop-catalog`."""
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "dbname": target.database,
        "user": target.username,
        "sslmode": target.sslmode,
        "connect_timeout": max(1, int(target.connect_timeout)),
        "application_name": "hoop-catalog",
        "autocommit": True,
    }
    if target.password:
        kwargs["password"] = target.password
        if not upstream_tls.verified(target.sslmode, target.sslrootcert, tls=True):
            # the same rule as the gateway's own login: no cleartext or MD5 password to a
            # server whose identity is not verified (libpq refuses them itself, before sending)
            kwargs["require_auth"] = "!password,!md5"
    if target.sslrootcert:
        kwargs["sslrootcert"] = target.sslrootcert
    elif target.sslmode in upstream_tls.VERIFYING:
        kwargs["sslrootcert"] = "system"  # libpq's default is ~/.postgresql/root.crt
    return kwargs


class SideConnection:
    """One kept-open connection; `query` reconnects once on a broken connection, then raises."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def query(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = await psycopg.AsyncConnection.connect(**side_kwargs(self.target))
                cur = await self.conn.execute(sql, params)
                return await cur.fetchall()
            except psycopg.OperationalError:
                self.conn = None
                if attempt == 2:
                    raise
        return []

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
