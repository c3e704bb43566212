"""The PostgreSQL door judges statements by their effect, keeps users of one connection out of
each other's sessions, and answers a syntax error as the server does.

Each bypass is asserted on the upstream effect: the rows, the column, the other user's
backend are still there afterwards.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from support.postgres import connect_target, on_server
from support.rules import rule_toml

pytestmark = pytest.mark.needs_postgres

RULES = (
    rule_toml("no-unbounded-delete", statements=["delete"], where="missing-or-trivial")
    + rule_toml("no-unbounded-update", statements=["update"], where="missing-or-trivial")
    + rule_toml("ledger-is-append-only", statements=["update"], tables=["ledger"])
    + rule_toml("no-loading-orders", statements=["insert"], tables=["orders"])
    + rule_toml("no-drop", statements=["drop"])
)

SCHEMA = """
DROP TABLE IF EXISTS eff_items, ledger, orders, eff_source;
CREATE TABLE eff_items (id int PRIMARY KEY, secret text);
INSERT INTO eff_items SELECT g, 's' || g FROM generate_series(1, 5) g;
CREATE TABLE eff_source (id int);
INSERT INTO eff_source VALUES (1);
CREATE TABLE ledger (id int PRIMARY KEY, amount int);
INSERT INTO ledger VALUES (1, 100);
CREATE TABLE orders (id int);
"""


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute(SCHEMA)
    g = make_gateway(RULES)
    g.issue_tokens("alice", "bob")
    return g


def refused(gw, user: str, sql: str) -> psycopg.Error:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn(user, gw.tokens[user]), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute(sql)
        assert conn.execute("SELECT 'usable'").fetchone() == ("usable",)
    return err.value


@pytest.mark.parametrize(
    "sql",
    [
        "MERGE INTO eff_items t USING eff_source s ON true WHEN MATCHED THEN DELETE",
        "MERGE INTO eff_items t USING eff_source s ON 1 = 1 WHEN MATCHED AND 2 > 1 THEN DELETE",
        "MERGE INTO eff_items t USING (SELECT 1) s ON t.id = t.id WHEN MATCHED THEN DELETE",
        "MERGE INTO eff_items t USING (SELECT 1 AS k) s ON s.k = 1 WHEN MATCHED THEN DELETE",
        "DELETE FROM eff_items USING eff_source s WHERE s.id = 1",
    ],
)
def test_merge_that_deletes_every_row_is_refused(gw, pg_target, sql: str) -> None:  # type: ignore[no-untyped-def]
    err = refused(gw, "alice", sql)
    assert err.sqlstate == "42501" and "rule no-unbounded-delete blocks DELETE" in str(err)
    assert on_server(pg_target, "SELECT count(*) FROM eff_items") == [(5,)]


def test_merge_actions_and_upserts_obey_update_rules(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    err = refused(
        gw, "alice", "MERGE INTO eff_items t USING eff_source s ON true WHEN MATCHED THEN UPDATE SET secret = 'x'"
    )
    assert "no-unbounded-update" in str(err)
    err = refused(gw, "alice", "INSERT INTO ledger VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET amount = 0")
    assert "rule ledger-is-append-only blocks UPDATE" in str(err)
    assert on_server(pg_target, "SELECT amount FROM ledger") == [(100,)]
    assert on_server(pg_target, "SELECT count(*) FROM eff_items WHERE secret = 'x'") == [(0,)]
    # A bounded MERGE still runs.
    with psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True) as conn:
        conn.execute("MERGE INTO eff_items t USING eff_source s ON t.id = s.id WHEN MATCHED THEN DELETE")
    assert on_server(pg_target, "SELECT count(*) FROM eff_items") == [(4,)]


def test_copy_from_stdin_is_an_insert(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    result = gw.psql("alice", gw.tokens["alice"], None, input="COPY orders FROM STDIN;\n1\n2\n\\.\nSELECT 'after';\n")
    assert "rule no-loading-orders blocks INSERT" in result.stderr
    assert on_server(pg_target, "SELECT count(*) FROM orders") == [(0,)]


def test_drop_column_is_a_drop(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    err = refused(gw, "alice", "ALTER TABLE eff_items ADD COLUMN note text, DROP COLUMN secret")
    assert "rule no-drop blocks DROP COLUMN" in str(err)
    columns = on_server(
        pg_target, "SELECT attname FROM pg_attribute WHERE attrelid = 'eff_items'::regclass AND attnum > 0"
    )
    assert ("secret",) in columns and ("note",) not in columns


def _backend_of(pg_admin, marker: str) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = pg_admin.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s", (f"%{marker}%",)).fetchone()
        if row:
            return int(row[0])
        time.sleep(0.05)
    raise AssertionError("alice's statement never showed upstream")


def test_bob_cannot_see_or_end_alices_backend(gw, pg_admin) -> None:  # type: ignore[no-untyped-def]
    alice = psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True)
    marker = "alice-sleeps-7c1e"
    done: list[object] = []
    sleeper = threading.Thread(target=lambda: done.append(alice.execute(f"SELECT '{marker}', pg_sleep(2)").fetchone()))
    sleeper.start()
    pid = _backend_of(pg_admin, marker)  # the superuser outside the gateway finds alice's upstream backend
    for sql in (
        f"SELECT pg_cancel_backend({pid})",
        f"SELECT pg_terminate_backend({pid})",
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
        "SELECT pid, query FROM pg_stat_activity",
        "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
        f"SELECT pg_blocking_pids({pid})",
    ):
        err = refused(gw, "bob", sql)
        assert err.sqlstate == "42501" and "rule builtin-other-sessions blocks" in str(err), sql
    with psycopg.connect(gw.dsn("bob", gw.tokens["bob"]), autocommit=True) as bob:  # extended protocol too
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="builtin-other-sessions"):
            bob.execute("SELECT pg_terminate_backend(%s)", (pid,))
    sleeper.join(10)
    assert done == [(marker, "")]  # alice's query ran to its end, not cancelled
    assert alice.execute("SELECT 'alice still here'").fetchone() == ("alice still here",)
    alice.close()


def test_the_builtin_can_be_switched_off(make_gateway, pg_admin) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway('[[rules]]\nname = "builtin-other-sessions"\naction = "block"\nenabled = false\n')
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) >= 1 FROM pg_stat_activity").fetchone() == (True,)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 FROM WHERE x",
        "SELECT 1;\nSELECT 'é', 2 FROM FROM t",
        "SELECT é FROM",
        "DELTE FROM eff_items",
        "SELECT 'unterminated",
    ],
)
def test_syntax_error_is_answered_as_the_server_answers_it(gw, pg_target, sql: str) -> None:  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as direct:
        with pytest.raises(psycopg.Error) as server:
            direct.execute(sql)
    err = refused(gw, "alice", sql)
    assert err.sqlstate == server.value.sqlstate == "42601"
    assert err.diag.statement_position == server.value.diag.statement_position
    assert err.diag.message_primary == server.value.diag.message_primary
    assert "refused by Hoop" not in str(err) and "rule" not in str(err)
    assert on_server(pg_target, "SELECT count(*) FROM eff_items") == [(5,)]


def test_psql_points_at_the_syntax_error(gw) -> None:  # type: ignore[no-untyped-def]
    result = gw.psql("alice", gw.tokens["alice"], "SELECT id FROM eff_items WHERE")
    assert "ERROR:  syntax error at end of input" in result.stderr
    assert "LINE 1: SELECT id FROM eff_items WHERE\n" in result.stderr
    caret = result.stderr.splitlines()[-1]
    assert caret.index("^") == len("LINE 1: SELECT id FROM eff_items WHERE")
