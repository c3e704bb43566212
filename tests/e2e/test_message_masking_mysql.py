"""ERR packets through the MySQL door carry no masked value; code and SQLSTATE stay intact.

`extractvalue(1, concat(0x7e, (select email ...)))` makes MariaDB quote the address in an XPATH
error. With a column rule on `email` (with and without the email detector) neither PyMySQL nor
the `mariadb` client sees it, nor does the store or the recording; without rules the error is
exactly the server's.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, throwaway_database

pytestmark = pytest.mark.needs_mariadb

CANARY_ID, PLAIN_ID = secrets.token_hex(4), secrets.token_hex(6)
CANARY = f"msg18.canary.{CANARY_ID}@example.org"
PLAIN_CANARY = f"msg18-plain-{PLAIN_ID}"  # no detector knows it
RULES = {
    "column rule": '\n[[masking]]\nname = "emails"\ncolumns = ["msg18_users.email"]\nstyle = "redact"\n',
    "column rule and detector": (
        '\n[[masking]]\nname = "emails"\ncolumns = ["email"]\ndetectors = ["email"]\nstyle = "partial"\n'
    ),
    "no rule": "",
}
XPATH = "select extractvalue(1, concat(0x7e, (select email from msg18_users where id = {id})))"


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database(
        "msg18",
        "CREATE TABLE msg18_users (id INT PRIMARY KEY, email TEXT)",
        f"INSERT INTO msg18_users VALUES (1, '{CANARY}'), (2, '{PLAIN_CANARY}')",
    ) as name:
        yield name


@pytest.fixture(scope="module", params=list(RULES))
def gw(request: pytest.FixtureRequest, db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    body = ALICE + mysql_connection_toml(db) + RULES[request.param]
    with mysql_gateway(tmp_path_factory.mktemp("msg18"), body) as g:
        g.env["MSG18_RULES"] = request.param
        yield g


def _masking(gw: GatewayProcess) -> bool:
    return gw.env["MSG18_RULES"] != "no rule"


def _pymysql(**kw: object) -> pymysql.Connection:
    return pymysql.connect(ssl_disabled=True, autocommit=True, **kw)  # type: ignore[arg-type]


def _error(conn: pymysql.Connection, sql: str) -> tuple[int, str]:
    with pytest.raises(pymysql.err.MySQLError) as caught, conn.cursor() as cur:
        cur.execute(sql)
    return caught.value.args[0], caught.value.args[1]


def test_pymysql_error_keeps_its_code_and_loses_the_value(gw: GatewayProcess, db: str) -> None:
    through = _pymysql(
        host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=gw.tokens["alice"], database="my"
    )
    direct = _pymysql(**ROOT, database=db)
    for row in (1, 2):
        code, message = _error(through, XPATH.format(id=row))
        server_code, server_message = _error(direct, XPATH.format(id=row))
        assert code == server_code == 1105 and message.startswith("XPATH syntax error: '")
        if _masking(gw):
            assert CANARY_ID not in message and PLAIN_ID not in message, message
        else:
            assert message == server_message  # no rule: the server's own bytes
        # Errors quoting the statement's own words are kept, and the session stays usable.
        assert _error(through, "select nosuchcolumn from msg18_users") == (
            1054,
            _error(direct, "select nosuchcolumn from msg18_users")[1],
        )
    with through.cursor() as cur:
        cur.execute("select id from msg18_users order by id")
        assert cur.fetchall() == ((1,), (2,))
    through.close()
    direct.close()


def test_show_warnings_messages_are_masked(gw: GatewayProcess, db: str) -> None:
    through = _pymysql(
        host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=gw.tokens["alice"], database="my"
    )
    direct = _pymysql(**ROOT, database=db)

    def warnings(conn: pymysql.Connection) -> tuple[tuple[object, ...], ...]:
        with conn.cursor() as cur:
            cur.execute("select cast(email as signed) from msg18_users order by id")
            cur.execute("show warnings")
            return cur.fetchall()

    seen, server = warnings(through), warnings(direct)
    assert [row[:2] for row in seen] == [row[:2] for row in server] and len(seen) == 2  # level and code
    if _masking(gw):
        assert CANARY_ID not in str(seen) and PLAIN_ID not in str(seen), seen
        assert all(str(row[2]).startswith("Truncated incorrect INTEGER value: '") for row in seen), seen
    else:
        assert seen == server and PLAIN_ID in str(seen)
    through.close()
    direct.close()


def test_mariadb_client_sees_code_and_sqlstate_but_not_the_value(gw: GatewayProcess, db: str) -> None:
    def mariadb(*target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", "-h", "127.0.0.1", *target, "--skip-ssl", "-N", "-B", "--force"],
            input=f"{XPATH.format(id=1)};\n{XPATH.format(id=2)};\nselect 7;\n",
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = mariadb("-P", str(gw.ports["mysql"]), "-u", "alice", f"-p{gw.tokens['alice']}", "my")
    assert out.stderr.count("ERROR 1105 (HY000) at line") == 2, out.stderr
    assert out.stdout.strip() == "7"
    if _masking(gw):
        assert CANARY_ID not in out.stderr and PLAIN_ID not in out.stderr, out.stderr
    else:
        assert out.stderr == mariadb("-P", "3306", "-u", "root", db).stderr and CANARY_ID in out.stderr


def test_stored_records_hold_the_masked_text(gw: GatewayProcess) -> None:
    if not _masking(gw):
        pytest.skip("only masking keeps the value out of the records")
    conn = _pymysql(host="127.0.0.1", port=gw.ports["mysql"], user="alice", password=gw.tokens["alice"], database="my")
    _error(conn, XPATH.format(id=2))
    conn.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        replays = "".join(gw.cli("replay", str(n), check=False).stdout for n in range(1, 6))
        if replays.count("XPATH syntax error") >= 3:
            break
        time.sleep(0.2)  # the journal and the recording flush in batches
    assert "XPATH syntax error" in replays
    assert not _files_holding(gw.root, PLAIN_CANARY.encode())


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]
