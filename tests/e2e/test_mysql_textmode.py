"""The MySQL door reads statement text under the session's own settings: the client character
set (handshake, SET NAMES, SET character_set_client) and sql_mode (NO_BACKSLASH_ESCAPES,
ANSI_QUOTES), as the server reports them. Each attack ends with the rows still there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from support.gateway import ALICE, GatewayProcess
from support.mariadb import (
    ROOT,
    mariadb_client,
    mysql_connection_toml,
    mysql_gateway,
    rows_on_server,
    through,
    throwaway_database,
    throwaway_user,
)
from support.rules import rule_toml

pytestmark = pytest.mark.needs_mariadb

ROWS = 3
# A character of each charset whose last byte is 0x5C (backslash); decoded as UTF-8 it is a
# replacement character plus a backslash, so `'\'<char>'` reads as an unterminated string to a
# UTF-8 reader under either backslash mode, while the server closes it and runs what follows.
MULTIBYTE = {"gbk": "bf5c", "big5": "a45c", "sjis": "955c", "cp932": "955c"}
# Valid UTF-8 too (中 and a backslash), while gbk reads two characters and no backslash: text a
# gateway judging under stale settings would read without error, and wrongly.
CHAMELEON = "e4b8ad5c"


def _payload(char_hex: str) -> bytes:
    return b"SELECT '\\'" + bytes.fromhex(char_hex) + b"' ; DELETE FROM t; -- '"


RULES = rule_toml("no-delete-t", statements=["delete"], tables=["t"]) + rule_toml(
    "bounded-c", statements=["delete"], tables=["c"], where="missing-or-trivial"
)


@pytest.fixture(scope="module")
def db() -> Iterator[dict[str, str]]:
    with (
        throwaway_database(
            "hoop_tm",
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) CHARACTER SET utf8mb4",
            "INSERT INTO t VALUES (1, 'é'), (2, '中'), (3, '表')",
            "CREATE TABLE c (id INT PRIMARY KEY)",
            "INSERT INTO c VALUES (1), (2), (3)",
        ) as name,
        throwaway_user("hoop_tm", name) as (user, password),
    ):
        yield {"db": name, "user": user, "password": password}


@pytest.fixture(scope="module")
def gw(db: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    conn = mysql_connection_toml(db["db"], username=db["user"], password="${HOOP_TEST_TM_PASSWORD}")
    env = {"HOOP_TEST_TM_PASSWORD": db["password"]}
    with mysql_gateway(tmp_path_factory.mktemp("tmgw"), ALICE + conn + RULES, env=env) as g:
        yield g


@pytest.fixture(autouse=True)
def rows(db: dict[str, str]) -> None:
    """Each test starts with the same rows (an attack that got through must not hide the next)."""
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True, charset="utf8mb4")
    with root.cursor() as cur:
        cur.execute("DELETE FROM t")
        cur.execute("INSERT INTO t VALUES (1, 'é'), (2, '中'), (3, '表')")
        cur.execute("DELETE FROM c")
        cur.execute("INSERT INTO c VALUES (1), (2), (3)")
    root.close()


def connect(gw: GatewayProcess, charset: str = "utf8mb4", **kw: Any) -> pymysql.Connection:
    return through(gw, tls=True, charset=charset, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, **kw)


def count(db: dict[str, str], table: str = "t") -> int:
    return rows_on_server(db["db"], table)


def run(conn: pymysql.Connection, sql: bytes | str) -> None:
    """Every result of a multi-statement text (the server stops at the first error)."""
    conn.query(sql)
    while conn._result is not None and conn._result.has_next:
        conn.next_result()


def attempt(conn: pymysql.Connection, sql: bytes | str) -> str:
    try:
        run(conn, sql)
    except pymysql.err.MySQLError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("charset", sorted(MULTIBYTE))
@pytest.mark.parametrize("how", ["handshake", "set-names", "set-character-set-client"])
def test_multibyte_backslash_cannot_hide_a_statement(
    gw: GatewayProcess, db: dict[str, str], charset: str, how: str
) -> None:
    conn = connect(gw, charset if how == "handshake" else "utf8mb4")
    if how == "set-names":
        run(conn, f"SET NAMES {charset}")
    elif how == "set-character-set-client":
        run(conn, f"SET character_set_client = {charset}")
    error = attempt(conn, _payload(MULTIBYTE[charset]))
    assert count(db) == ROWS
    assert "refused by Hoop" in error and "no-delete-t" in error, error
    conn.close()


@pytest.mark.parametrize(
    ("sql_mode", "payload"),
    [
        # The server runs statements one by one: the DELETE runs before the unterminated end.
        ("NO_BACKSLASH_ESCAPES", b"SELECT 'a\\' AS x ; DELETE FROM t; SELECT '"),
        ("ANSI_QUOTES", b'SELECT 1 AS "a\\" ; DELETE FROM t; SELECT "'),
    ],
)
def test_sql_mode_set_by_the_client_is_followed(
    gw: GatewayProcess, db: dict[str, str], sql_mode: str, payload: bytes
) -> None:
    conn = connect(gw)
    run(conn, f"SET sql_mode = CONCAT(@@sql_mode, ',{sql_mode}')")
    error = attempt(conn, payload)
    assert count(db) == ROWS
    # Read under the mode, the last quote opens a string that never ends: answered as the
    # server answers a syntax error, and nothing of the text runs.
    assert "1064" in error and f"unterminated quoted text starting at offset {len(payload) - 1}" in error, error
    # Harmless text under the mode works and reads as the server reads it.
    with conn.cursor() as cur:
        cur.execute("SELECT 'a\\' AS x" if sql_mode == "NO_BACKSLASH_ESCAPES" else 'SELECT "id" FROM t WHERE "id" = 1')
        assert cur.fetchall() == ((("a\\",),) if sql_mode == "NO_BACKSLASH_ESCAPES" else ((1,),))
    conn.close()


def test_commands_sent_together_wait_for_the_settings(gw: GatewayProcess, db: dict[str, str]) -> None:
    """SET NAMES and the gbk payload in one write: the second is judged under gbk."""
    conn = connect(gw)
    conn._execute_command(pymysql.constants.COMMAND.COM_QUERY, b"SET NAMES gbk")
    conn._execute_command(pymysql.constants.COMMAND.COM_QUERY, _payload(CHAMELEON))
    conn._read_query_result()
    conn._next_seq_id = 1  # PyMySQL numbers packets as if each command were sent alone
    with pytest.raises(pymysql.err.MySQLError, match="refused by Hoop"):
        conn._read_query_result()
    assert count(db) == ROWS
    conn.close()


def test_decision_cache_is_not_poisoned(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw)
    run(conn, "delete from c where id=1000 or 1=2")
    error = attempt(conn, "delete from c where id=1000 or 1=1")
    assert "refused by Hoop" in error and "bounded-c" in error, error
    assert count(db, "c") == 3
    conn.close()


@pytest.mark.parametrize(("charset", "value"), [("latin1", "é"), ("gbk", "中"), ("sjis", "表"), ("utf8mb4", "表")])
def test_harmless_text_in_the_clients_charset(gw: GatewayProcess, charset: str, value: str) -> None:
    conn = connect(gw, charset)
    with conn.cursor() as cur:
        cur.execute("SELECT id, v FROM t WHERE v = %s", (value,))
        assert cur.fetchall() == ((next(i for i, v in ((1, "é"), (2, "中"), (3, "表")) if v == value), value),)
    conn.close()


def test_text_the_gateway_cannot_read_is_refused(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw, "gbk")
    error = attempt(conn, b"SELECT '\x81' ; DELETE FROM t; -- '")
    assert "invalid byte sequence" in error and "gbk" in error, error
    for setting in ("SET NAMES armscii8", "SET character_set_client = 'keybcs2'", "SET CHARACTER SET ucs2"):
        error = attempt(conn, setting)  # refused before the server sees it
        assert "character set" in error and setting.split()[-1].strip("'") in error, error
    run(conn, "SET @x = 0, character_set_client = armscii8")  # a spelling found only in the report
    error = attempt(conn, b"SELECT '\xa9'")
    assert "armscii8" in error, error
    run(conn, "SELECT 1")  # plain ASCII reads the same in every character set
    assert count(db) == ROWS
    conn.close()
    login = mariadb_client(gw, "alice", "SELECT 1", "--default-character-set=armscii8")
    assert login.returncode != 0 and "character set armscii8" in login.stderr, login.stderr


def _gbk_attack_is_refused(conn: pymysql.Connection, db: dict[str, str]) -> None:
    """After SET NAMES gbk, text whose multibyte character hides a backslash is refused and the
    rows stay."""
    run(conn, "SET NAMES gbk")
    error = attempt(conn, _payload(MULTIBYTE["gbk"]))
    assert "refused by Hoop" in error
    assert count(db) == ROWS


def test_session_tracking_cannot_be_switched_off(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw)
    for sql in ("SET session_track_system_variables = ''", "SET @@SESSION.Session_Track_System_Variables = 'x'"):
        error = attempt(conn, sql)
        assert "session tracking" in error, error
    _gbk_attack_is_refused(conn, db)
    conn.close()


def test_reset_connection_keeps_the_settings_known(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw)
    run(conn, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'")
    conn._execute_command(0x1F, b"")  # COM_RESET_CONNECTION
    conn._read_ok_packet()
    _gbk_attack_is_refused(conn, db)
    conn.close()


def test_code_the_gateway_did_not_read_cannot_blind_it(gw: GatewayProcess, db: dict[str, str]) -> None:
    """A routine created upstream, outside the gateway, switches the server's reports off; the
    gateway asks for the settings again before it judges text that depends on them."""
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True)
    with root.cursor() as cur:
        cur.execute("CREATE OR REPLACE PROCEDURE quiet() BEGIN SET SESSION session_track_system_variables = ''; END")
        cur.execute(
            "CREATE OR REPLACE FUNCTION quietly() RETURNS INT BEGIN "
            "SET SESSION session_track_system_variables = ''; RETURN 1; END"
        )
    root.close()
    for call in ("CALL quiet()", "SELECT quietly()"):
        conn = connect(gw)
        # The gateway reads routine bodies from the catalog and may refuse the call itself;
        # if the call runs, the text after it must still be read under the real settings.
        if "refused by Hoop" not in attempt(conn, call):
            run(conn, "SET NAMES gbk")
            error = attempt(conn, _payload(CHAMELEON))
            assert "refused by Hoop" in error and "no-delete-t" in error, (call, error)
        assert count(db) == ROWS
        conn.close()


@pytest.mark.parametrize(
    ("charset", "payload"),
    [
        # utf8mb4: NBSP is no whitespace to the server, so `--<NBSP>` starts no comment.
        ("utf8mb4", "SELECT 1 --\u00a0 FROM (SELECT 2 AS `\u00a0`) q; DELETE FROM t".encode()),
        # DEL after `--` starts a comment to the server, hiding a quote.
        ("utf8mb4", b"SELECT 1 --\x7f '\n; DELETE FROM t; -- '"),
        # latin1: NBSP is whitespace between words.
        ("latin1", b"DELETE\xa0FROM t"),
    ],
)
def test_comments_start_where_the_server_starts_them(
    gw: GatewayProcess, db: dict[str, str], charset: str, payload: bytes
) -> None:
    conn = connect(gw, charset)
    error = attempt(conn, payload)
    assert count(db) == ROWS
    assert "refused by Hoop" in error and "no-delete-t" in error, error
    conn.close()


def test_an_sql_mode_the_gateway_cannot_follow(gw: GatewayProcess) -> None:
    """MariaDB's ORACLE mode reads statements with another grammar: text is refused, naming it,
    except the way back."""
    conn = connect(gw)
    run(conn, "SET sql_mode = 'ORACLE'")
    error = attempt(conn, "SELECT 1")
    assert "sql_mode ORACLE" in error, error
    run(conn, "SET sql_mode = DEFAULT")
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == ((1,),)
    conn.close()


HIDDEN_OR = "DELETE FROM c WHERE id = '\\'縗' OR 1=1 -- '"  # gbk: 縗 is bf 5c


def test_a_hidden_where_clause_in_one_statement(gw: GatewayProcess, db: dict[str, str]) -> None:
    """One statement, no `;`: read as UTF-8 the OR is inside a string, to the server it is code."""
    conn = connect(gw, "gbk")
    error = attempt(conn, HIDDEN_OR.encode("gbk"))
    assert "refused by Hoop" in error and "bounded-c" in error, error
    assert count(db, "c") == 3
    conn.close()


def test_prepared_statement_text_is_read_in_the_clients_charset(gw: GatewayProcess, db: dict[str, str]) -> None:
    import mysql.connector as connector

    conn = connector.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],
        database="my",
        ssl_ca=str(gw.root / "data" / "tls.crt"),
        ssl_verify_cert=False,
        use_pure=True,
        autocommit=True,
        charset="gbk",
    )
    cur = conn.cursor(prepared=True)
    with pytest.raises(connector.Error, match="refused by Hoop"):
        cur.execute(HIDDEN_OR)
    assert count(db, "c") == 3
    cur.execute("SELECT v FROM t WHERE v = ?", ("中",))  # harmless gbk text through a prepare
    assert [tuple(r) for r in cur.fetchall()] == [("中",)]
    conn.close()
