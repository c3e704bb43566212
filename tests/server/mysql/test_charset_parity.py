"""The gateway's reading of each MySQL client character set (hoop.core.sql.textmode) agrees
with the real server's, byte by byte, wherever it matters for statement boundaries: which
bytes a multibyte character swallows (a backslash or backtick tail), and which bytes the
lexer takes for whitespace or, after `--`, for the start of a comment."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from support.mariadb import ROOT as MARIADB
from support.servers import missing

from hoop.core.sql.textmode import MYSQL_CODECS, MYSQL_DASH_COMMENT_BYTES, MYSQL_SPACE_BYTES, SINGLE_BYTE

pytestmark = pytest.mark.needs_mariadb


@pytest.fixture(scope="module")
def server() -> Iterator[pymysql.connections.Connection]:
    try:
        conn = pymysql.connect(**MARIADB, autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        missing(f"MariaDB not available: {exc}")
    with conn.cursor() as cur:
        cur.execute("SHOW CHARACTER SET")
        conn.known = {row[0] for row in cur.fetchall()}  # type: ignore[attr-defined]
    yield conn
    conn.close()


def _runs(conn: pymysql.connections.Connection, sql: bytes) -> tuple[tuple[int, ...], ...] | None:
    try:
        conn.query(sql)
    except pymysql.err.MySQLError:
        return None
    return conn._result.rows  # type: ignore[no-any-return, union-attr]


def _use(conn: pymysql.connections.Connection, charset: str) -> None:
    if charset not in conn.known:  # type: ignore[attr-defined]
        pytest.skip(f"the server has no {charset}")
    conn.query(f"SET NAMES {charset}")
    conn.query("SET character_set_results = utf8mb4")


MULTIBYTE = sorted(cs for cs, codec in MYSQL_CODECS.items() if codec not in SINGLE_BYTE and codec != "latin-1")
SINGLE = sorted(cs for cs, codec in MYSQL_CODECS.items() if codec in SINGLE_BYTE or codec == "latin-1")


@pytest.mark.parametrize("charset", MULTIBYTE)
def test_multibyte_tails_are_read_as_the_server_reads_them(
    server: pymysql.connections.Connection, charset: str
) -> None:
    _use(server, charset)
    codec = MYSQL_CODECS[charset]
    wrong = []
    for lead in range(0x80, 0x100):
        for tail in (0x5C, 0x60):
            pair = bytes((lead, tail))
            try:
                joined = len(pair.decode(codec)) == 1
            except UnicodeDecodeError:
                continue  # the gateway refuses such text
            if tail == 0x5C:  # one character: the string closes; else the backslash escapes the quote
                server_joined = _runs(server, b"SELECT LENGTH('X" + pair + b"') AS a") is not None
            else:  # one character: the name goes on to the last backtick; else a stray backtick
                server_joined = _runs(server, b"SELECT 1 AS a FROM (SELECT 1 AS `X" + pair + b"`) t") is not None
            if joined != server_joined:
                wrong.append(pair.hex())
    assert not wrong


@pytest.mark.parametrize("charset", SINGLE)
def test_single_byte_whitespace_and_comment_starts(server: pymysql.connections.Connection, charset: str) -> None:
    _use(server, charset)
    spaces = set(MYSQL_SPACE_BYTES.get(charset, b""))
    dash = spaces | set(MYSQL_DASH_COMMENT_BYTES.get(charset, b""))
    wrong = []
    for byte in range(0x80, 0x100):
        b = bytes((byte,))
        is_space = _runs(server, b"SELECT" + b + b"1 AS a") is not None
        starts_comment = _runs(server, b"SELECT 1 --" + b + b" FROM (SELECT 2 AS a) q") == ((1,),)
        if is_space != (byte in spaces) or starts_comment != (byte in dash):
            wrong.append((hex(byte), is_space, starts_comment))
    assert not wrong
