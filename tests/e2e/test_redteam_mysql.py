"""Guardrail bypasses on the MySQL door found by trying other members of each class of issue 13
(settings changes, executable comments, WHERE folding, dynamic text) against the real MariaDB.
Each attack is asserted on the upstream effect: the rows are still there afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from support.gateway import GatewayProcess, write_config
from support.mariadb import ROOT, throwaway_database
from support.servers import free_port

pytestmark = pytest.mark.needs_mariadb

ROWS = 3


@pytest.fixture(scope="module")
def db() -> Iterator[dict[str, str]]:
    user, password = f"hoop_rt_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    with throwaway_database("hoop_rt") as name:
        root = pymysql.connect(**ROOT, autocommit=True)
        with root.cursor() as cur:
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT ALL ON `{name}`.* TO %s@'127.0.0.1'", (user,))
        yield {"db": name, "user": user, "password": password}
        with root.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user,))
        root.close()


@pytest.fixture(scope="module")
def gw(db: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    body = f'''
[[users]]
name = "alice"
groups = ["dev"]

[[connections]]
name = "my"
type = "mysql"
host = "127.0.0.1"
port = 3306
database = "{db["db"]}"
username = "{db["user"]}"
password = "${{HOOP_TEST_RT_PASSWORD}}"
sslmode = "disable"
groups = ["dev"]

[[rules]]
name = "no-delete-t"
action = "block"
statements = ["delete"]
tables = ["t"]

[[rules]]
name = "t-stays"
action = "block"
statements = ["drop table", "truncate table"]
tables = ["t"]

[[rules]]
name = "bounded-c"
action = "block"
statements = ["delete", "update"]
tables = ["c"]
where = "missing-or-trivial"
'''
    g = write_config(tmp_path_factory.mktemp("rtgw"), body, listen={"mysql": free_port()})
    g.env["HOOP_TEST_RT_PASSWORD"] = db["password"]
    g.start()
    g.tokens = {"alice": g.token("alice")}  # type: ignore[attr-defined]
    yield g
    g.stop()


@pytest.fixture(autouse=True)
def rows(db: dict[str, str]) -> None:
    """Each test starts with the same rows (an attack that got through must not hide the next)."""
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True, charset="utf8mb4")
    with root.cursor() as cur:
        for table in ("t", "c"):
            cur.execute(f"CREATE OR REPLACE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20)) CHARACTER SET utf8mb4")
            cur.execute(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    root.close()


def connect(gw: GatewayProcess, charset: str = "utf8mb4", **kw: Any) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=gw.ports["mysql"],
        user="alice",
        password=gw.tokens["alice"],  # type: ignore[attr-defined]
        database="my",
        ssl={"ca": str(gw.root / "data" / "tls.crt"), "check_hostname": False},
        charset=charset,
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
        autocommit=True,
        connect_timeout=10,
        **kw,
    )


def count(db: dict[str, str], table: str) -> int:
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True)
    with root.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        n = cur.fetchone()[0]
    root.close()
    return int(n)


def attempt(conn: pymysql.Connection, sql: bytes | str) -> str:
    """Every result of a multi-statement text; the error text, or "" when all ran."""
    try:
        conn.query(sql)
        while conn._result is not None and conn._result.has_next:
            conn.next_result()
    except pymysql.err.MySQLError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(
    "payload",
    [
        # The server reads each statement of a text after running the ones before it.
        "SET sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\' ; DELETE FROM t; -- '",
        "SET @@session.sql_mode := CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES'); SELECT 'a\\' ; DELETE FROM t; -- '",
        'SET @m = \'ANSI_QUOTES\'; SET LOCAL `sql_mode` = @m; SELECT 1 AS "a\\" ; DELETE FROM t; -- "',
        # 中 + backslash in UTF-8, two characters and no backslash in gbk.
        "SET NAMES gbk; SELECT '中\\' ; DELETE FROM t; -- '",
        "SET @x = 1, character_set_client = gbk; SELECT '中\\' ; DELETE FROM t; -- '",
        # A prepared SET changes the settings as much as a plain one.
        "PREPARE p FROM 'SET sql_mode = ''NO_BACKSLASH_ESCAPES'''; EXECUTE p; SELECT 'a\\' ; DELETE FROM t; -- '",
    ],
)
def test_settings_changed_earlier_in_the_same_text(gw: GatewayProcess, db: dict[str, str], payload: str) -> None:
    conn = connect(gw)
    error = attempt(conn, payload.encode())
    assert count(db, "t") == ROWS
    assert "refused by Hoop" in error, error
    conn.close()


def test_a_settings_change_alone_or_last_still_works(gw: GatewayProcess) -> None:
    conn = connect(gw)
    assert attempt(conn, "SELECT 1; SET NAMES gbk") == ""
    with conn.cursor() as cur:
        cur.execute("SET @x = 1; SELECT 'a\\\\' AS v")  # user variables only: no settings change
        cur.nextset()
        assert cur.fetchall() == (("a\\",),)
    conn.close()


@pytest.mark.parametrize(
    ("payload", "table"),
    [
        # MariaDB skips MySQL-only versions (50700-99999) and versions newer than itself as
        # comments: a quote inside them is no quote.
        ("SELECT 1 /*!50700 '*/ ; DELETE FROM t; -- ' */", "t"),
        ("SELECT 1 /*!999999 '*/ ; DELETE FROM t; -- ' */", "t"),
        ("SELECT 1 /*M!999999 '*/ ; DELETE FROM t; -- ' */", "t"),
        # ... and a WHERE inside them is no WHERE.
        ("DELETE FROM c /*!50700 WHERE id = 1 */", "c"),
        ("DELETE FROM c WHERE /*!999999 id = 1 AND */ 1", "c"),
    ],
)
def test_version_comments_the_server_skips(gw: GatewayProcess, db: dict[str, str], payload: str, table: str) -> None:
    conn = connect(gw)
    error = attempt(conn, payload)
    assert count(db, table) == ROWS
    assert "refused by Hoop" in error, error
    conn.close()


def test_version_comments_the_server_runs(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw)
    error = attempt(conn, "SELECT 1 /*!40101 ; DELETE FROM t */")
    assert "refused by Hoop" in error and "no-delete-t" in error, error
    with conn.cursor() as cur:
        cur.execute("SELECT 1 /*!50700 + 1 */ /*M!100000 + 2 */ AS v")
        assert cur.fetchall() == ((3,),)
    assert count(db, "t") == ROWS
    conn.close()


@pytest.mark.parametrize(
    "where",
    [
        "'1abc'",  # a string is its leading number
        "id = 5 OR '1abc'",
        "IF(1, 1, id)",
        "COALESCE(1, id)",
        "IFNULL(1, id)",
        "CASE WHEN 1 THEN 1 ELSE id END",
        "NOT (RAND() > 2 AND id = 1)",  # false AND anything is false, NOT makes it true
        "(id) = id",
        "`id` = id",
        "c.id = id",
        "CASE 1 WHEN 1 THEN 1 ELSE id END",
        "IF(RAND() < 2, 1, id)",
        "NULLIF(1, 2) OR id = 7",
        "1 IN (1, id)",
    ],
)
def test_where_clauses_always_true(gw: GatewayProcess, db: dict[str, str], where: str) -> None:
    conn = connect(gw)
    error = attempt(conn, f"DELETE FROM c WHERE {where}")
    assert count(db, "c") == ROWS
    assert "refused by Hoop" in error and "bounded-c" in error, error
    conn.close()


def test_a_negated_unknown_is_not_taken_from_the_decision_cache(gw: GatewayProcess, db: dict[str, str]) -> None:
    """`NOT (1 AND id <> 2)` deletes one row; `NOT (0 AND id <> 2)`, of the same shape, all."""
    conn = connect(gw)
    assert attempt(conn, "DELETE FROM c WHERE NOT (1 AND id <> 2)") == ""
    error = attempt(conn, "DELETE FROM c WHERE NOT (0 AND id <> 2)")
    assert "refused by Hoop" in error and "bounded-c" in error, error
    assert count(db, "c") == ROWS - 1
    conn.close()


# Read with backslash escapes the value is bounded (`v = '...'`); under NO_BACKSLASH_ESCAPES
# the quote closes after the backslash and `OR 1=1` is code.
BODY = "'DELETE FROM c WHERE v = ''a\\\\'' OR 1=1 -- '''"


def test_set_statement_changes_how_dynamic_text_is_read(gw: GatewayProcess, db: dict[str, str]) -> None:
    conn = connect(gw)
    error = attempt(conn, f"SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR EXECUTE IMMEDIATE {BODY}")
    assert count(db, "c") == ROWS
    assert "refused by Hoop" in error, error
    # A harmless body under the same name first: the second PREPARE must replace it.
    assert attempt(conn, "PREPARE s FROM 'SELECT 1'") == ""
    attempt(conn, f"SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR PREPARE s FROM {BODY}")
    attempt(conn, "EXECUTE s")
    assert count(db, "c") == ROWS
    # Prepared names used under SET STATEMENT escape the bookkeeping of what each name runs.
    for sql in ("SET STATEMENT max_statement_time = 10 FOR EXECUTE s", "SET STATEMENT x = 1 FOR DEALLOCATE PREPARE s"):
        error = attempt(conn, sql)
        assert "refused by Hoop" in error and "cannot be known" in error, error
    conn.close()


@pytest.mark.parametrize("sql_mode", ["PIPES_AS_CONCAT", "ANSI"])
def test_pipes_as_concat(gw: GatewayProcess, db: dict[str, str], sql_mode: str) -> None:
    """`'a' || 10 < 5` is `'a' OR false` by default, `'a10' < 5` (true) under PIPES_AS_CONCAT."""
    conn = connect(gw)
    assert attempt(conn, f"SET sql_mode = CONCAT(@@sql_mode, ',{sql_mode}')") == ""
    error = attempt(conn, "DELETE FROM c WHERE 'a' || 10 < 5")
    assert count(db, "c") == ROWS
    assert "refused by Hoop" in error and "PIPES_AS_CONCAT" in error, error
    with conn.cursor() as cur:  # text without || reads the same either way
        cur.execute("SELECT CONCAT('a', '||') AS v")
        assert cur.fetchall() == (("a||",),)
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        # The server lower-cases information_schema names character by character: İ is i.
        "SELECT COUNT(*) FROM information_schema.PROCESSLİST",
        "SELECT COUNT(*) FROM information_schema.`processlİst`",
        "SELECT COUNT(*) FROM information_schema.INNODB_LOC\u212aS",  # Kelvin sign: k
    ],
)
def test_process_list_names_folded_as_the_server_folds_them(gw: GatewayProcess, sql: str) -> None:
    conn = connect(gw)
    error = attempt(conn, sql)
    assert "refused by Hoop" in error and "builtin-other-sessions" in error, error
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE OR REPLACE TABLE t (id INT)",
        "CREATE OR REPLACE TABLE t SELECT 1 AS id",
        "CREATE OR REPLACE TABLE `t` LIKE c",
        "ALTER TABLE t DISCARD TABLESPACE",
        "ALTER TABLE t COMMENT 'x', DISCARD TABLESPACE",
    ],
)
def test_statements_that_empty_the_table(gw: GatewayProcess, db: dict[str, str], sql: str) -> None:
    conn = connect(gw)
    error = attempt(conn, sql)
    assert "refused by Hoop" in error and "t-stays" in error, error
    assert count(db, "t") == ROWS
    conn.close()


def test_high_not_precedence(gw: GatewayProcess, db: dict[str, str]) -> None:
    """`NOT 2 IN (0, 2, 4)` is false by default and `(NOT 2) IN (0, 2, 4)`, true, under the mode."""
    conn = connect(gw)
    assert attempt(conn, "SET sql_mode = CONCAT(@@sql_mode, ',HIGH_NOT_PRECEDENCE')") == ""
    for where in ("id = 7 OR NOT 2 IN (0, 2, 4)", "id = 7 OR NOT (2) BETWEEN 0 AND 2"):
        error = attempt(conn, f"DELETE FROM c WHERE {where}")
        assert "refused by Hoop" in error and "HIGH_NOT_PRECEDENCE" in error, error
    assert count(db, "c") == ROWS
    with conn.cursor() as cur:  # NOT as part of an operator reads the same either way
        cur.execute("SELECT id FROM c WHERE v IS NOT NULL AND id NOT IN (2, 3) AND v NOT LIKE 'x'")
        assert cur.fetchall() == ((1,),)
    conn.close()


@pytest.mark.parametrize("where", ["id = 5 OR '' IS NULL", "COALESCE('', 1)", "IFNULL('', 1)"])
def test_empty_string_is_null(gw: GatewayProcess, db: dict[str, str], where: str) -> None:
    """Under MariaDB's EMPTY_STRING_IS_NULL the literal '' is NULL: each WHERE is always true."""
    conn = connect(gw)
    assert attempt(conn, "SET sql_mode = CONCAT(@@sql_mode, ',EMPTY_STRING_IS_NULL')") == ""
    error = attempt(conn, f"DELETE FROM c WHERE {where}")
    assert count(db, "c") == ROWS
    assert "refused by Hoop" in error and "bounded-c" in error, error
    conn.close()


@pytest.mark.parametrize(
    "table",
    [
        "performance_schema.prepared_statements_instances",  # others' prepared statement text
        "performance_schema.user_variables_by_thread",  # others' user variables
        "performance_schema.events_statements_summary_by_digest",  # others' statements
        "information_schema.METADATA_LOCK_INFO",
    ],
)
def test_other_threads_tables(gw: GatewayProcess, table: str) -> None:
    conn = connect(gw)
    error = attempt(conn, f"SELECT * FROM {table}")
    assert "refused by Hoop" in error and "builtin-other-sessions" in error, error
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        # One WHERE bounds d; every row of c is joined to d's row 1 and deleted.
        "DELETE d, c FROM d JOIN c WHERE d.id = 1",
        "DELETE c, d FROM c, d WHERE d.id = 1 AND d.id < 5",
        "UPDATE d JOIN c SET d.v = 'x', c.v = 'x' WHERE d.id = 1",
    ],
)
def test_each_written_table_is_bounded_by_its_own_columns(gw: GatewayProcess, db: dict[str, str], sql: str) -> None:
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True)
    with root.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE d (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO d VALUES (1, 'a'), (2, 'b')")
    root.close()
    conn = connect(gw)
    error = attempt(conn, sql)
    assert "refused by Hoop" in error and "bounded-c" in error, error
    assert count(db, "c") == ROWS
    root = pymysql.connect(**ROOT, database=db["db"], autocommit=True)
    with root.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM c WHERE v = 'x'")
        assert cur.fetchone()[0] == 0
    root.close()
    conn.close()


@pytest.mark.parametrize(
    ("sql_mode", "payload"),
    [
        ("PIPES_AS_CONCAT", b"DELETE FROM c WHERE 'a' || 10 < 5"),
        ("HIGH_NOT_PRECEDENCE", b"DELETE FROM c WHERE id = 7 OR NOT 2 IN (0, 2, 4)"),
        ("EMPTY_STRING_IS_NULL", b"DELETE FROM c WHERE COALESCE('', 1)"),
    ],
)
def test_plain_ascii_sent_together_with_a_mode_change_waits(
    gw: GatewayProcess, db: dict[str, str], sql_mode: str, payload: bytes
) -> None:
    """The SET and the DELETE in one write: the DELETE is judged under the mode the SET made."""
    conn = connect(gw)
    conn._execute_command(pymysql.constants.COMMAND.COM_QUERY, f"SET sql_mode = '{sql_mode}'".encode())
    conn._execute_command(pymysql.constants.COMMAND.COM_QUERY, payload)
    conn._read_query_result()
    conn._next_seq_id = 1  # PyMySQL numbers packets as if each command were sent alone
    with pytest.raises(pymysql.err.MySQLError, match="refused by Hoop"):
        conn._read_query_result()
    assert count(db, "c") == ROWS
    conn.close()
