"""Result sets through a MySQL door that masks nothing: clients get what the server sent, and
each statement's row count is recorded for replay.

Without masking rules a whole result that arrives in one read is counted in one pass and
forwarded as it came; these tests hold that path and the packet-by-packet one to the same
answers, with PyMySQL (EOF packets) and the `mariadb` client (which may ask for OK packets
instead), and to the same recorded row counts.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, throwaway_database

pytestmark = pytest.mark.needs_mariadb
ROWS = 500
QUERIES = [
    ("SELECT 1", 1),
    ("SELECT id, label, note FROM nums ORDER BY id", ROWS),
    ("SELECT note, id FROM nums WHERE note IS NULL ORDER BY id", ROWS // 5),  # rows start with NULL (0xFB)
    ("SELECT * FROM nums WHERE 1 = 0", 0),
    ("SELECT id FROM nums WHERE id <= 3; SELECT label FROM nums WHERE id = 4", 4),  # two result sets
    ("SELECT REPEAT('x', 70000) AS big, 2 AS two", 1),  # one row larger than a socket read
    ("SELECT id FROM missing_table", None),  # an error, not a result
]


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database(
        "hoop_r",
        "CREATE TABLE nums (id INT PRIMARY KEY, label VARCHAR(20), note TEXT NULL)",
        f"INSERT INTO nums SELECT seq, CONCAT('n-', seq), IF(seq % 5 = 0, NULL, REPEAT('y', seq)) FROM seq_1_to_{ROWS}",
    ) as name:
        yield name


@pytest.fixture(scope="module")
def gw(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with mysql_gateway(tmp_path_factory.mktemp("myres"), ALICE + mysql_connection_toml(db)) as g:
        yield g


def _run(conn: pymysql.Connection, sql: str) -> Any:
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            out = [(cur.description and [d[0] for d in cur.description], cur.fetchall())]
            while cur.nextset():
                out.append((cur.description and [d[0] for d in cur.description], cur.fetchall()))
            return out
    except pymysql.err.MySQLError as exc:
        return ("error", exc.args[0])


def _pymysql(**kw: Any) -> pymysql.Connection:
    return pymysql.connect(
        ssl_disabled=True, autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, **kw
    )


def _recorded_rows(gw: GatewayProcess, statements: int, wait: float = 10) -> list[int | None]:
    """Row counts of the statements `hoop replay` shows for the latest session, in order (None:
    no count), read again until all `statements` are there: the journal writes in batches."""
    deadline = time.monotonic() + wait
    while True:
        sessions = json.loads(gw.cli("sessions", "--json").stdout)
        counts: list[int | None] = []
        if sessions:
            replay = gw.cli("replay", str(max(s["id"] for s in sessions))).stdout
            for line in replay.splitlines():
                if "    -> " in line:
                    m = re.search(r", (\d+) rows?\b", line)
                    counts.append(int(m.group(1)) if m else None)
        if len(counts) >= statements or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def test_pymysql_gets_what_the_server_sends_and_rows_are_recorded(gw: GatewayProcess, db: str) -> None:
    direct = _pymysql(**ROOT, database=db)
    token = gw.tokens["alice"]
    through = _pymysql(host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=token, database="my")
    for sql, _ in QUERIES:
        assert _run(through, sql) == _run(direct, sql), sql
    through.close()
    direct.close()

    expected = [rows for _, rows in QUERIES]
    assert _recorded_rows(gw, len(QUERIES) + 1)[-len(QUERIES) :] == expected  # and PyMySQL's SET NAMES


def test_mariadb_client_output_matches_direct(gw: GatewayProcess, db: str) -> None:
    script = "\n".join(sql if sql.endswith(";") else sql + ";" for sql, rows in QUERIES if rows is not None)

    def mariadb(*target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", "-h", "127.0.0.1", *target, "--skip-ssl", "-N", "-B"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
        )

    direct = mariadb("-P", "3306", "-u", "root", db)
    through = mariadb("-P", str(gw.ports["mysql"]), "-u", "alice", f"-p{gw.tokens['alice']}", "my")
    assert direct.returncode == 0, direct.stderr
    assert through.returncode == 0, through.stderr
    assert through.stdout == direct.stdout and len(through.stdout) > 70000


@pytest.fixture
def big_packets() -> Iterator[None]:
    """The server's max_allowed_packet raised for one test (new sessions see it), then restored."""
    root = pymysql.connect(**ROOT, autocommit=True)
    with root.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    try:
        yield
    finally:
        with root.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (before,))
        root.close()


def test_values_past_16_mib_cross_as_split_packets(gw: GatewayProcess, db: str, big_packets: None) -> None:
    """MySQL splits a payload of 16 MiB or more into 0xFFFFFF-byte packets: a 20 MiB value goes
    up in one COM_QUERY and comes back in one row, both split, and arrives intact."""
    blob = secrets.token_hex(10 * 1024 * 1024)  # 20 MiB of text
    token = gw.tokens["alice"]
    through = _pymysql(host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=token, database="my")
    with through.cursor() as cur:
        cur.execute("CREATE TABLE blobs (id INT PRIMARY KEY, body LONGTEXT)")
        cur.execute("INSERT INTO blobs VALUES (1, %s)", (blob,))
        cur.execute("SELECT body, LENGTH(body) FROM blobs WHERE id = 1")
        body, length = cur.fetchone()
        cur.execute("SELECT 'next'")  # the session goes on after the split row
        assert cur.fetchall() == (("next",),)
    through.close()
    assert length == len(blob) and body == blob
    direct = _pymysql(**ROOT, database=db)
    with direct.cursor() as cur:
        cur.execute("SELECT MD5(body) = MD5(%s) FROM blobs WHERE id = 1", (blob,))
        assert cur.fetchone() == (1,)
        cur.execute("DROP TABLE blobs")
    direct.close()
    # The journal hashes and stores 20 MiB statements and samples: give a busy machine time.
    # Five statements: PyMySQL's own SET NAMES, then the four above.
    assert _recorded_rows(gw, 5, wait=90)[-3:] == [1, 1, 1]
