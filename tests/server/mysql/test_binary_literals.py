"""`bytes` parameters (`_binary'...'` literals holding bytes that are not UTF-8) through the real
`hoop serve` in front of the real MariaDB: run, judged and recorded; such bytes anywhere else
are still refused (1300)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pymysql
import pytest
from support.gateway import GatewayProcess
from support.mariadb import mysql_connection_toml, mysql_gateway, through, throwaway_database
from support.waiting import eventually

pytestmark = pytest.mark.needs_mariadb

BODY = """
[[users]]
name = "alice"
groups = ["dev"]

[[rules]]
name = "no-deletes"
action = "block"
statements = ["delete"]
"""
DATA = b"\x80\x81\xff\x00'\\"
# as PyMySQL up to 1.2.0 and other drivers write a bytes parameter (later PyMySQL writes X'..')
LITERAL = b"_binary'\x80\x81\xff\\0\\'\\\\'"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with throwaway_database("hoop_bin", "CREATE TABLE blobs (id INT PRIMARY KEY, b BLOB)") as db:
        with mysql_gateway(tmp_path_factory.mktemp("bingw"), BODY + mysql_connection_toml(db)) as g:
            yield g


def test_bytes_parameters_round_trip_and_are_recorded(gw: GatewayProcess) -> None:
    conn = through(gw)
    conn.query(b"INSERT INTO blobs VALUES (1, " + LITERAL + b")")
    with conn.cursor() as cur:
        cur.execute("SELECT b FROM blobs WHERE id = 1")
        assert cur.fetchone()[0] == DATA
    conn.close()

    def recorded() -> list[sqlite3.Row]:
        db = sqlite3.connect(gw.root / "data" / "hoop.db")
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT text_bytes FROM statements WHERE text_bytes IS NOT NULL").fetchall()
        finally:
            db.close()
        assert rows
        return rows

    [row] = eventually(recorded)
    assert row["text_bytes"] == b"INSERT INTO blobs VALUES (1, " + LITERAL + b")"


def test_statements_with_bytes_are_still_judged(gw: GatewayProcess) -> None:
    conn = through(gw)
    with pytest.raises(pymysql.err.OperationalError) as err:
        conn.query(b"DELETE FROM blobs WHERE b = " + LITERAL)
    assert err.value.args[0] == 1142 and "no-deletes" in err.value.args[1]
    conn.close()


@pytest.mark.parametrize("raw", [b"SELECT '\x80'", b"SELECT _binary'ok' /* \x80 */", b"SELECT `\x80`"])
def test_bytes_outside_binary_literals_are_refused(gw: GatewayProcess, raw: bytes) -> None:
    conn = through(gw)
    with pytest.raises(pymysql.err.OperationalError) as err:
        conn.query(raw)
    assert err.value.args[0] == 1300 and "invalid byte sequence" in err.value.args[1]
    assert conn.cursor().execute("SELECT 1") == 1  # the session goes on
    conn.close()
