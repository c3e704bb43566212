"""Differential test of the MySQL reading against the real server: a few thousand generated texts
mixing quotes, backslashes, comments, `;` and multibyte characters whose last byte is a
backslash, under several client character sets and sql_modes. Each statement is `SELECT ... AS
a` (a result set) or `DO ...` (none), so the server's answers show which statements it ran; the
gateway's classification under the same settings must name the same statements in the same
order. Text the gateway refuses (undecodable, or not split) needs no agreement: it never runs."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pymysql
import pytest
from support.mariadb import ROOT
from support.servers import missing

from hoop.core.sql import classify
from hoop.core.sql.textmode import TextModeError, mysql_mode

pytestmark = pytest.mark.needs_mariadb

PIECES = [b"a", b"'", b"''", b"\\", b"\\'", b'"', b";", b"-- ", b"#", b"/*", b"*/", b"\n", b"`", b" ", b"x;y"]
CHARS = {  # characters of each set that end in a backslash byte, plus a harmless one
    "utf8mb4": ["é".encode(), "中".encode()],
    "gbk": [b"\xbf\x5c", b"\xe4\xb8\xad\x5c", b"\xd6\xd0"],
    "sjis": [b"\x95\x5c", b"\x83\x5c", b"\x82\xa0"],
    "latin1": [b"\xe9", b"\xa0"],
}
MODES = ["STRICT_TRANS_TABLES", "NO_BACKSLASH_ESCAPES", "ANSI_QUOTES"]
TEXTS_PER_CASE = 400


@pytest.fixture(scope="module")
def server() -> Iterator[pymysql.connections.Connection]:
    try:
        conn = pymysql.connect(
            **ROOT, autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, connect_timeout=5
        )
    except pymysql.err.OperationalError as exc:
        missing(f"MariaDB not available: {exc}")
    yield conn
    conn.close()


def _text(rng: random.Random, chars: list[bytes]) -> bytes:
    stmts = []
    for _ in range(rng.randint(1, 3)):
        body = b"".join(rng.choice(PIECES + chars * 3) for _ in range(rng.randint(0, 6)))
        quote = rng.choice([b"'", b"'", b'"'])
        head = rng.choice([b"SELECT LENGTH(", b"DO LENGTH("])
        tail = b") AS a" if head.startswith(b"SELECT") else b")"
        stmts.append(head + quote + body + quote + tail)
    return b";".join(stmts) + rng.choice([b"", b";", b" -- end", b"\n"])


def _server_kinds(conn: pymysql.connections.Connection, raw: bytes) -> tuple[list[str], bool]:
    """What the server ran, in order, and whether it ran everything."""
    kinds: list[str] = []
    try:
        conn.query(raw)
        kinds.append("select" if conn._result.field_count else "do")  # type: ignore[union-attr]
        while conn._result is not None and conn._result.has_next:  # type: ignore[union-attr]
            conn.next_result()
            kinds.append("select" if conn._result.field_count else "do")  # type: ignore[union-attr]
    except pymysql.err.MySQLError:
        return kinds, False
    return kinds, True


@pytest.mark.parametrize("sql_mode", MODES)
@pytest.mark.parametrize("charset", sorted(CHARS))
def test_statements_the_server_runs_are_the_ones_the_gateway_reads(
    server: pymysql.connections.Connection, charset: str, sql_mode: str
) -> None:
    server.query(f"SET NAMES {charset}")
    server.query(f"SET SESSION sql_mode = '{sql_mode}'")
    mode = mysql_mode(charset, sql_mode)
    rng = random.Random(f"{charset}/{sql_mode}")
    compared, wrong = 0, []
    for _ in range(TEXTS_PER_CASE):
        raw = _text(rng, CHARS[charset])
        ran, complete = _server_kinds(server, raw)
        try:
            result = classify(mode.decode(raw), "mysql", mode)
        except TextModeError:
            continue  # refused by the gateway
        if result.error:
            continue  # refused by the gateway
        seen = [s.kind for s in result.statements]
        compared += 1
        if (seen != ran) if complete else (seen[: len(ran)] != ran):
            wrong.append((raw, ran, seen))
    server.query("SET NAMES utf8mb4")
    server.query("SET SESSION sql_mode = DEFAULT")
    assert not wrong, wrong[:5]
    assert compared > TEXTS_PER_CASE // 5  # enough texts were read to compare
