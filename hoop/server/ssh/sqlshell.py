"""The SQL shell of the built-in session: a client of the gateway's own database doors.

Rather than a second path to the database, the shell logs in to this gateway's PostgreSQL
(or MySQL) door as the user, with a token issued for that one login and revoked as soon as
the login succeeded. Guardrails, holds, masking, recording and audit therefore apply exactly
as for psql or mysql. A hold is shown while it waits: PostgreSQL's door sends a
NoticeResponse ("held for approval #N ..."); MySQL has no asynchronous notices, so the MySQL
shell watches the gateway's approval requests for one of this user on this connection.

Two output styles: "table" for the interactive shell (aligned, psql style) and "exec" for
`ssh USER+CONN@gateway 'SQL'` (`psql -A` for PostgreSQL, `mariadb -B` for MySQL; see
sql_output.py). Errors, refusals and notices go to stderr as `ERROR: ...` / `NOTICE: ...`.
`execute()` and `command()` return False when something failed, which the session turns into
exit statuses (session.py).

Backslash commands: `\\?`, `\\x` and `\\q` on both; `\\dt` and `\\d NAME` on PostgreSQL,
whose catalog queries are statements of the session like any other (pg_describe.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hoop.core.durations import format_span
from hoop.server.ssh import pg_describe, sql_output

if TYPE_CHECKING:
    import psycopg

    from hoop.core.config import Connection
    from hoop.core.identity import IssuedToken
    from hoop.server.services import Services

MAX_ROWS = 1000  # the interactive table shows at most this many rows of a result
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
Say = Callable[..., None]  # say(text, err=False)

POSTGRES_HELP = """\
Shell commands:
  \\dt          list tables in the search path
  \\d NAME      describe a table or view (columns, types, nullability, defaults)
  \\x           toggle expanded display (one block per row)
  \\?           this text
  \\q           leave the SQL shell
Statements end with ';'. \\dt and \\d run their catalog queries through the gateway too."""

MYSQL_HELP = """\
Shell commands:
  \\x           toggle expanded display (one block per row)
  \\?           this text
  \\q           leave the SQL shell
Statements end with ';'. For tables and columns: SHOW TABLES; and DESCRIBE NAME;"""


class SqlShellError(Exception):
    """The shell could not start; the message is for the user."""


async def _one_login_token(services: Services, user: str, connection: str) -> IssuedToken:
    token = await asyncio.to_thread(services.tokens.issue, user, 120.0, "ssh built-in SQL shell")
    services.journal.audit(user, "token.issue", connection, token_id=token.id, purpose="ssh sql shell")
    return token


class _Shell:
    """What both shells share: output style, expanded display, and the backslash commands
    every dialect knows."""

    help_text = ""

    def __init__(
        self, services: Services, user: str, connection: Connection, say: Say, *, style: str = "table"
    ) -> None:
        self.services, self.user, self.connection, self.say = services, user, connection, say
        self.style = style  # "table" (interactive) or "exec"
        self.expanded = False

    def show(self, columns: list[str], rows: list[tuple[Any, ...]], *, title: str = "") -> None:
        if self.expanded:
            text = sql_output.expanded(columns, rows)
        elif self.style == "exec":
            text = self.exec_format(columns, rows)
        else:
            text = sql_output.aligned(columns, rows[:MAX_ROWS])
            if len(rows) > MAX_ROWS:
                text += f"\n(only the first {MAX_ROWS} rows are shown)"
        self.say(f"{title}\n{text}" if title else text)

    def exec_format(self, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
        raise NotImplementedError

    def error(self, message: str) -> bool:
        self.say(f"ERROR: {message}", err=True)
        return False

    async def command(self, line: str) -> bool:
        """A backslash command (`\\q` is the session's); False if it failed."""
        name, _, arg = line.strip().partition(" ")
        if name == "\\?":
            self.say(self.help_text)
            return True
        if name == "\\x":
            self.expanded = not self.expanded
            self.say(f"Expanded display is {'on' if self.expanded else 'off'}.")
            return True
        return await self.dialect_command(name, arg.strip())

    async def dialect_command(self, name: str, arg: str) -> bool:
        self.say(f"invalid command {name}. Try \\? for help.", err=True)
        return False


class PostgresShell(_Shell):
    help_text = POSTGRES_HELP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> None:
        import psycopg
        from psycopg.adapt import AdaptersMap
        from psycopg.types.string import TextLoader

        address = self.services.config.listen.postgres
        if address is None:
            raise SqlShellError("the gateway's PostgreSQL door is not enabled ([listen] postgres)")
        # Every value as the server's text (types without a loader fall back to OID 0's), so
        # rows print as psql prints them. The shell sends no parameters, so no dumpers.
        as_text = AdaptersMap()
        as_text.register_loader(0, TextLoader)
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
                context=as_text,
            )
        except psycopg.Error as exc:
            raise SqlShellError(_pg_message(exc)) from None
        finally:
            await asyncio.to_thread(self.services.tokens.revoke, token.id)
        self.conn.add_notice_handler(lambda d: self.say(f"{d.severity or 'NOTICE'}: {d.message_primary}", err=True))

    def exec_format(self, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
        return sql_output.unaligned(columns, rows)

    async def execute(self, sql: str) -> bool:
        import psycopg

        assert self.conn is not None  # statements run only once open() succeeded
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(sql, prepare=False)  # no params: simple protocol, several statements allowed
                while True:
                    if cur.description is not None:
                        self.show([c.name for c in cur.description], await cur.fetchall())
                    elif cur.statusmessage:
                        self.say(cur.statusmessage)
                    if not cur.nextset():
                        break
        except psycopg.Error as exc:
            return self.error(_pg_message(exc))
        return True

    async def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]] | None:
        """Rows of one catalog query of a backslash command (None: it failed, already said)."""
        import psycopg

        assert self.conn is not None
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(sql, prepare=False)
                names = [c.name for c in cur.description or []]
                return names, await cur.fetchall()
        except psycopg.Error as exc:
            self.error(_pg_message(exc))
            return None

    async def dialect_command(self, name: str, arg: str) -> bool:
        if name == "\\dt" and not arg:
            found = await self.query(pg_describe.LIST_TABLES)
            if found is None:
                return False
            if found[1]:
                self.show(*found, title="List of relations")
            else:
                self.say("Did not find any relations.")
            return True
        if name == "\\d" and arg:
            return await self.describe(arg)
        if name == "\\d":
            self.say("usage: \\d NAME (\\dt lists the tables)", err=True)
            return False
        return await super().dialect_command(name, arg)

    async def describe(self, name: str) -> bool:
        found = await self.query(pg_describe.relation(name))
        if found is None:
            return False
        if not found[1]:
            self.say(f'Did not find any relation named "{name}".', err=True)
            return False
        schema, relname, kind = found[1][0]
        columns = await self.query(pg_describe.columns(name))
        if columns is None:
            return False
        self.show(*columns, title=pg_describe.title(schema, relname, kind))
        return True

    async def cancel(self) -> None:
        if self.conn is not None:
            await self.conn.cancel_safe()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def _pg_message(exc: Any) -> str:
    diag = getattr(exc, "diag", None)
    return (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip()


class MySQLShell(_Shell):
    """Through the MySQL door with PyMySQL in a worker thread."""

    help_text = MYSQL_HELP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
                conv={},  # no converters: values stay the server's text, as mariadb prints them
                client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,  # 'select 1; select 2' as mariadb -e
            )
        except pymysql.MySQLError as exc:
            raise SqlShellError(str(exc.args[-1]) if exc.args else str(exc)) from None
        finally:
            await asyncio.to_thread(self.services.tokens.revoke, token.id)

    def exec_format(self, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
        return sql_output.batch(columns, rows)

    async def execute(self, sql: str) -> bool:
        import pymysql

        def run() -> list[tuple[list[str], list[tuple[Any, ...]]] | int]:
            out: list[tuple[list[str], list[tuple[Any, ...]]] | int] = []
            with self.conn.cursor() as cur:
                cur.execute(sql)
                while True:
                    if cur.description:
                        out.append(([d[0] for d in cur.description], list(cur.fetchall())))
                    else:
                        out.append(cur.rowcount)
                    if not cur.nextset():
                        break
            return out

        approvals = self.services.approvals
        approvals.listeners.append(self._show_hold)
        try:
            results = await asyncio.to_thread(run)
        except pymysql.MySQLError as exc:
            return self.error(str(exc.args[-1]) if exc.args else str(exc))
        finally:
            approvals.listeners.remove(self._show_hold)
        for result in results:
            if isinstance(result, int):
                if self.style != "exec":  # mariadb -B prints nothing for a statement without rows
                    self.say(f"Query OK, {result} row{'' if result == 1 else 's'} affected")
            else:
                self.show(*result)
        return True

    def _show_hold(self, event: str, approval_id: int) -> None:
        """An approval request of this user on this connection while a statement of the
        shell runs is that statement's hold (the door answers only once it is decided).
        Called on the gateway's event loop, like the session's own output."""
        pending = self.services.approvals.pending.get(approval_id) if event == "request" else None
        if pending is not None and (pending.user, pending.connection) == (self.user, self.connection.name):
            self.say(
                f"NOTICE: held for approval #{approval_id} by rule {pending.rule.name}; "
                f"waiting up to {format_span(pending.rule.timeout)}",
                err=True,
            )

    async def cancel(self) -> None:
        pass  # a KILL QUERY would need a second login; Ctrl-C only stops waiting in the shell

    async def close(self) -> None:
        if self.conn is not None and self.conn.open:  # the session may close it twice when the client leaves
            await asyncio.to_thread(self.conn.close)


def open_shell(
    services: Services, user: str, connection: Connection, say: Say, *, style: str = "table"
) -> PostgresShell | MySQLShell:
    kind = PostgresShell if connection.type == "postgres" else MySQLShell
    return kind(services, user, connection, say, style=style)
