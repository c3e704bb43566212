"""A raw libpq connection to the machine's PostgreSQL for the parity tests, and what the server
makes of bytes: as characters of a client encoding, and as a simple-protocol Query.

The parity tests compare the gateway's reading of text with the server's own, so a missing
server is a failure here, never a skip: without it the comparison proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from psycopg import pq

CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname={database} connect_timeout=10"

# convert_from() runs the same verification and conversion as the server's client-encoding path;
# a character the server rejects reads as NULL instead of ending the whole batch.
_CONVERT = b"""CREATE FUNCTION pg_temp.hoop_read(b bytea, enc name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN convert_from(b, enc); EXCEPTION WHEN others THEN RETURN NULL; END $$"""


class Server:
    """One plain libpq connection to the server, or a test failure naming why there is none."""

    def __init__(self, database: str = "test") -> None:
        conn = pq.PGconn.connect(CONNINFO.format(database=database).encode())
        if conn.status != pq.ConnStatus.OK:
            message = conn.error_message.decode(errors="replace").strip()
            conn.finish()
            pytest.fail(f"the parity tests need PostgreSQL on 127.0.0.1:5432 (user postgres, db {database}): {message}")
        self.conn = conn
        self._reader = False
        # Notices (escape_string_warning, identifier truncation) would go to stderr; they change nothing.
        self.command(b"SET client_min_messages TO error")

    def close(self) -> None:
        self.conn.finish()

    def command(self, sql: bytes) -> None:
        result = self.conn.exec_(sql)
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise AssertionError(f"{sql!r} failed: {result.error_message.decode(errors='replace')}")

    def try_command(self, sql: bytes) -> str:
        """Run `sql`; the server's error message, or "" when it succeeded."""
        result = self.conn.exec_(sql)
        if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            return ""
        return (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"?").decode(errors="replace")

    def parameter(self, name: str) -> str:
        return (self.conn.parameter_status(name.encode()) or b"").decode()

    def read(self, encoding: str, probes: list[bytes]) -> list[str | None]:
        """Each probe as the server reads it in `encoding` (None: the server rejects it), on a UTF8
        database."""
        if self.parameter("client_encoding") != "UTF8":
            self.command(b"SET client_encoding TO 'UTF8'")
        if not self._reader:
            self.command(_CONVERT)
            self._reader = True
        array = "{" + ",".join('"\\\\x' + p.hex() + '"' for p in probes) + "}"
        result = self.conn.exec_params(
            b"SELECT pg_temp.hoop_read(b, $2) FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, i) ORDER BY i",
            [array.encode(), encoding.encode()],
        )
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = result.error_message.decode(errors="replace")
            raise AssertionError(f"reading probes in {encoding} failed: {message}")
        values = [result.get_value(row, 0) for row in range(result.ntuples)]
        return [None if v is None else bytes(v).decode("utf-8") for v in values]

    def run(self, raw: bytes) -> ServerRun:
        """Send `raw` as one simple-protocol Query inside a transaction that is rolled back."""
        self.command(b"BEGIN")
        self.conn.send_query(raw)
        tags: list[str] = []
        sqlstate: str | None = None
        message = ""
        while (result := self.conn.get_result()) is not None:
            if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                tags.append((result.command_status or b"").decode())
            elif result.status == pq.ExecStatus.FATAL_ERROR:
                sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
                message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode(errors="replace")
            elif result.status != pq.ExecStatus.EMPTY_QUERY:  # only comments and blanks: nothing ran
                raise AssertionError(f"unexpected result {result.status!r} for {raw!r}")
        self.command(b"ROLLBACK")
        return ServerRun(tuple(tags), sqlstate, message)


@dataclass(frozen=True)
class ServerRun:
    """What the server did with one Query: the command tag of each statement it ran (in order)
    and the error that ended the Query, if any. An error with no tags: nothing ran."""

    tags: tuple[str, ...]
    sqlstate: str | None = None
    message: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(tag.split(" ", 1)[0].lower() for tag in self.tags)
