"""The MySQL door judges statements by their effect, keeps users of one connection out of each
other's sessions, and answers a syntax error as the server does (error 1064, near the error).

Each bypass is asserted on the upstream effect: the rows, the column and the other user's
connection are still there afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pymysql
import pytest
from support.gateway import GatewayProcess, users_toml
from support.mariadb import (
    ROOT,
    mariadb_client,
    mysql_connection_toml,
    mysql_gateway,
    on_server,
    through,
    throwaway_database,
)
from support.rules import rule_toml

pytestmark = pytest.mark.needs_mariadb

RULES = (
    rule_toml("no-deleting-prices", statements=["delete"], tables=["prices"])
    + rule_toml("no-unbounded-delete", statements=["delete"], where="missing-or-trivial")
    + rule_toml("ledger-is-append-only", statements=["update"], tables=["ledger"])
    + rule_toml("ops-may-not-kill", statements=["kill"], groups=["ops"])
    + rule_toml("no-drop", statements=["drop column", "drop partition"])
)


USERS = {"alice": ["dev"], "bob": ["dev"], "carol": ["dev", "ops"]}


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    with throwaway_database(
        "hoop_eff",
        "CREATE TABLE prices (id INT PRIMARY KEY, price INT, note VARCHAR(20))",
        "INSERT INTO prices VALUES (1, 10, 'keep'), (2, 20, 'keep')",
        "CREATE TABLE ledger (id INT PRIMARY KEY, amount INT)",
        "INSERT INTO ledger VALUES (1, 100)",
        "CREATE TABLE wide (id INT, secret VARCHAR(20))",
        "CREATE TABLE stock (id INT PRIMARY KEY, qty INT)",
        "INSERT INTO stock VALUES (1, 5), (2, 7)",
    ) as name:
        yield name


@pytest.fixture(scope="module")
def gw(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    body = users_toml(USERS) + mysql_connection_toml(db) + RULES
    with mysql_gateway(tmp_path_factory.mktemp("myeff"), body, users=tuple(USERS)) as g:
        yield g


def refused(gw: GatewayProcess, user: str, sql: str) -> tuple[int, str]:
    conn = through(gw, user)
    try:
        with pytest.raises(pymysql.MySQLError) as err, conn.cursor() as cur:
            cur.execute(sql)
        with conn.cursor() as cur:  # the session goes on
            cur.execute("SELECT 'usable'")
            assert cur.fetchall() == (("usable",),)
    finally:
        conn.close()
    return err.value.args[0], err.value.args[1]


@pytest.mark.parametrize(
    "sql",
    ["REPLACE INTO prices VALUES (1, 0, 'replaced')", "REPLACE prices SET id = 2, price = 0, note = 'replaced'"],
)
def test_replace_deletes(gw: GatewayProcess, db: str, sql: str) -> None:
    code, message = refused(gw, "alice", sql)
    assert code == 1142 and "rule no-deleting-prices blocks DELETE" in message
    assert on_server(db, "SELECT id, price, note FROM prices ORDER BY id") == ((1, 10, "keep"), (2, 20, "keep"))


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE stock FROM stock JOIN ledger l ON true WHERE l.id = 1",
        "DELETE FROM stock USING stock, ledger l WHERE l.id = 1",
        "DELETE FROM stock WHERE EXISTS (SELECT 1 FROM ledger WHERE amount = 100)",
    ],
)
def test_a_where_on_another_table_does_not_bound_the_delete(gw: GatewayProcess, db: str, sql: str) -> None:
    code, message = refused(gw, "alice", sql)
    assert code == 1142 and "rule no-unbounded-delete blocks DELETE" in message
    assert on_server(db, "SELECT COUNT(*) FROM stock") == ((2,),)


def test_on_duplicate_key_update_updates(gw: GatewayProcess, db: str) -> None:
    code, message = refused(gw, "alice", "INSERT INTO ledger VALUES (1, 0) ON DUPLICATE KEY UPDATE amount = 0")
    assert code == 1142 and "rule ledger-is-append-only blocks UPDATE" in message
    assert on_server(db, "SELECT amount FROM ledger") == ((100,),)


@pytest.mark.parametrize("sql", ["ALTER TABLE wide DROP COLUMN secret", "ALTER TABLE wide ADD note INT, DROP secret"])
def test_drop_column_is_a_drop(gw: GatewayProcess, db: str, sql: str) -> None:
    code, message = refused(gw, "alice", sql)
    assert code == 1142 and "rule no-drop blocks DROP COLUMN" in message
    columns = on_server(
        db, f"SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'wide'"
    )
    assert ("secret",) in columns and ("note",) not in columns


def test_bob_cannot_see_or_kill_alices_upstream_connection(gw: GatewayProcess, db: str) -> None:
    alice = through(gw, "alice")
    with alice.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")  # runs upstream: alice's upstream thread id
        (thread,) = cur.fetchone()
    for sql in (
        f"PREPARE s FROM 'KILL {thread}'",
        f"PREPARE s FROM 'KILL QUERY ID {thread}'",
        f"EXECUTE IMMEDIATE 'KILL {thread}'",
        f"SET STATEMENT max_statement_time=10 FOR KILL {thread}",
        f"KILL {thread}; SELECT 1",
        "SHOW FULL PROCESSLIST",
        "SELECT ID, INFO FROM information_schema.PROCESSLIST",
        f"SHOW EXPLAIN FOR {thread}",
    ):
        code, message = refused(gw, "bob", sql)
        assert code == 1142 and "rule builtin-other-sessions blocks" in message, (sql, message)
    bob = through(gw, "bob")
    with bob.cursor() as cur, pytest.raises(pymysql.MySQLError):
        cur.execute("EXECUTE s")  # never prepared upstream
    with pytest.raises(pymysql.MySQLError) as err:  # the gateway's own KILL maps only bob's sessions
        bob.kill(alice.thread_id())
    assert err.value.args[0] == 1094
    bob.close()
    assert on_server(db, f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {thread}") == ((1,),)
    with alice.cursor() as cur:
        cur.execute("SELECT 'alice still here'")
        assert cur.fetchall() == (("alice still here",),)
    alice.close()


def test_a_users_own_kill_query_still_works(gw: GatewayProcess, db: str) -> None:
    """The gateway's mapping of `KILL QUERY <gateway id>` to the same user's session is not
    caught by the built-in rule."""
    victim, killer = through(gw, "alice"), through(gw, "alice")
    result: list[object] = []

    def sleep() -> None:
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT SLEEP(20)")
                result.append(cur.fetchall())
        except pymysql.MySQLError as exc:
            result.append(exc.args[0])

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    for _ in range(200):  # wait until the server runs the SLEEP
        if on_server(db, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(20)'")[0][0]:
            break
        threading.Event().wait(0.05)
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim.thread_id()}")
    sleeper.join(15)
    assert not sleeper.is_alive()
    assert result in ([((1,),)], [1317])  # SLEEP interrupted: returns 1, or "query execution was interrupted"
    victim.close()
    killer.close()


def test_a_configured_kill_rule_still_applies_to_the_gateways_own_kill(gw: GatewayProcess) -> None:
    victim, killer = through(gw, "carol"), through(gw, "carol")
    with pytest.raises(pymysql.MySQLError) as err, killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim.thread_id()}")
    assert err.value.args[0] == 1142 and "rule ops-may-not-kill blocks KILL" in err.value.args[1]
    victim.ping(reconnect=False)
    victim.close()
    killer.close()


def test_prepare_kill_is_refused_through_the_mariadb_client(gw: GatewayProcess) -> None:
    result = mariadb_client(gw, "bob", "PREPARE s FROM 'KILL 1'", tls=False)
    assert "ERROR 1142" in result.stderr and "builtin-other-sessions" in result.stderr


@pytest.mark.parametrize(
    ("sql", "near"),
    [("SELECT 1 FROM WHERE x", "'WHERE x' at line 1"), ("SELECT 1 FROM\nprices WHERE id = = 1", "'= 1' at line 2")],
)
def test_syntax_error_is_answered_as_the_server_answers_it(gw: GatewayProcess, db: str, sql: str, near: str) -> None:
    direct = pymysql.connect(**ROOT, database=db, autocommit=True)
    with pytest.raises(pymysql.MySQLError) as server, direct.cursor() as cur:
        cur.execute(sql)
    direct.close()
    code, message = refused(gw, "alice", sql)
    assert code == server.value.args[0] == 1064
    assert f"near {near}" in message and f"near {near}" in server.value.args[1]
    assert message.startswith("You have an error in your SQL syntax")
    assert "refused by Hoop" not in message and "rule" not in message


def test_unterminated_string_is_a_syntax_error(gw: GatewayProcess) -> None:
    code, message = refused(gw, "alice", "SELECT 'abc")
    assert code == 1064 and "near ''abc' at line 1" in message
