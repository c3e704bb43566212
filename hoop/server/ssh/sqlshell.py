"""The SQL shell of the built-in session: a client of the gateway's own database doors.

Rather than a second path to the database, the shell logs in to this gateway's PostgreSQL
(or MySQL) door as the user, with a token issued for that one login and revoked as soon as
the login succeeded. Guardrails, holds, masking, recording and audit therefore apply exactly
as for psql or mysql, and a hold's NoticeResponse ("held for approval #N ...") is shown as it
arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from hoop.core.config import Connection
    from hoop.core.identity import IssuedToken
    from hoop.server.services import Services

MAX_CELL = 60
MAX_ROWS = 1000
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class SqlShellError(Exception):
    """The shell could not start; the message is for the user."""


def format_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A psql-like aligned table."""
    cells = [["NULL" if v is None else _cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out = [" | ".join(c.center(w) for c, w in zip(columns, widths)).rstrip(), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _cell(value: Any) -> str:
    text = bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray, memoryview)) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


async def _one_login_token(services: Services, user: str, connection: str) -> IssuedToken:
    token = await asyncio.to_thread(services.tokens.issue, user, 120.0, "ssh built-in SQL shell")
    services.journal.audit(user, "token.issue", connection, token_id=token.id, purpose="ssh sql shell")
    return token


class PostgresShell:
    def __init__(self, services: Services, user: str, connection: Connection, say: Callable[[str], None]) -> None:
        self.services, self.user, self.connection, self.say = services, user, connection, say
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> None:
        import psycopg

        address = self.services.config.listen.postgres
        if address is None:
            raise SqlShellError("the gateway's PostgreSQL door is not enabled ([listen] postgres)")
        token = await _one_login_token(self.services, self.user, self.connection.name)
        try:
            self.conn = await psycopg.AsyncConnection.connect(
                host=LOOPBACK.get(address[0], address[0]),
                port=address[1],
                user=self.user,
                password=token.token,
                dbname=self.connection.name,
                autocommit=True,
                application_name="hoop ssh",
                connect_timeout=10,
                sslmode="prefer",
            )
        except psycopg.Error as exc:
            raise SqlShellError(_pg_message(exc)) from None
        finally:
            await asyncio.to_thread(self.services.tokens.revoke, token.id)
        self.conn.add_notice_handler(lambda d: self.say(f"{d.severity or 'NOTICE'}: {d.message_primary}"))

    async def execute(self, sql: str) -> None:
        import psycopg

        assert self.conn is not None  # statements run only once open() succeeded
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(sql, prepare=False)  # no params: simple protocol, several statements allowed
                while True:
                    if cur.description is not None:
                        rows = await cur.fetchmany(MAX_ROWS)
                        self.say(format_table([c.name for c in cur.description], rows))
                    elif cur.statusmessage:
                        self.say(cur.statusmessage)
                    if not cur.nextset():
                        break
        except psycopg.Error as exc:
            self.say(f"ERROR: {_pg_message(exc)}")

    async def cancel(self) -> None:
        if self.conn is not None:
            await self.conn.cancel_safe()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def _pg_message(exc: Any) -> str:
    diag = getattr(exc, "diag", None)
    return (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()


class MySQLShell:
    """Through the MySQL door with PyMySQL in a worker thread (MySQL has no async notices,
    so a held statement simply waits; its outcome is printed when it returns)."""

    def __init__(self, services: Services, user: str, connection: Connection, say: Callable[[str], None]) -> None:
        self.services, self.user, self.connection, self.say = services, user, connection, say
        self.conn: Any = None  # a pymysql Connection (pymysql ships no type information)

    async def open(self) -> None:
        import pymysql

        address = self.services.config.listen.mysql
        if address is None:
            raise SqlShellError(
                "the gateway's MySQL door is not enabled ([listen] mysql), "
                "so the SQL shell is not available for this connection"
            )
        token = await _one_login_token(self.services, self.user, self.connection.name)
        try:
            self.conn = await asyncio.to_thread(
                pymysql.connect,
                host=LOOPBACK.get(address[0], address[0]),
                port=address[1],
                user=self.user,
                password=token.token,
                database=self.connection.name,
                autocommit=True,
                connect_timeout=10,
            )
        except pymysql.MySQLError as exc:
            raise SqlShellError(str(exc.args[-1]) if exc.args else str(exc)) from None
        finally:
            await asyncio.to_thread(self.services.tokens.revoke, token.id)

    async def execute(self, sql: str) -> None:
        import pymysql

        def run() -> list[str]:
            out = []
            with self.conn.cursor() as cur:
                cur.execute(sql)
                while True:
                    if cur.description:
                        out.append(format_table([d[0] for d in cur.description], list(cur.fetchmany(MAX_ROWS))))
                    else:
                        out.append(f"Query OK, {cur.rowcount} rows affected")
                    if not cur.nextset():
                        break
            return out

        try:
            for text in await asyncio.to_thread(run):
                self.say(text)
        except pymysql.MySQLError as exc:
            self.say(f"ERROR: {exc.args[-1] if exc.args else exc}")

    async def cancel(self) -> None:
        pass  # a KILL QUERY would need a second login; Ctrl-C only stops waiting in the shell

    async def close(self) -> None:
        if self.conn is not None:
            await asyncio.to_thread(self.conn.close)


def open_shell(
    services: Services, user: str, connection: Connection, say: Callable[[str], None]
) -> PostgresShell | MySQLShell:
    return (PostgresShell if connection.type == "postgres" else MySQLShell)(services, user, connection, say)
