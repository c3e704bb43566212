"""Deferred and indirect execution through the PostgreSQL door, judged by what it runs.

Routine bodies and DO blocks are judged where they are defined; calls of routines and the
triggers of written tables are judged by the bodies the gateway reads from the server's catalog,
including routines created directly on the server. Every test asserts the upstream effect.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support.postgres import connect_target
from support.rules import rule_toml

pytestmark = pytest.mark.needs_postgres

RULES = (
    rule_toml("no-drop", statements=["drop"])
    + rule_toml("no-wipe", statements=["delete", "update"], where="missing")
    + rule_toml("no-truncate", statements=["truncate"])
)


@pytest.fixture
def direct(pg_target: dict[str, str]) -> Iterator[psycopg.Connection[Any]]:
    """The target role connected to the server directly, not through the gateway."""
    with connect_target(pg_target) as conn:
        yield conn


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    return make_gateway(RULES)


def _name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


def _table(direct: psycopg.Connection[Any], rows: int = 3) -> str:
    name = _name("t")
    direct.execute(f"CREATE TABLE {name} (id int, x int)")
    direct.execute(f"INSERT INTO {name} SELECT g, g FROM generate_series(1, {rows}) g")
    return name


def _rows(direct: psycopg.Connection[Any], table: str) -> int:
    row = direct.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _exists(direct: psycopg.Connection[Any], name: str) -> bool:
    row = direct.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def test_function_whose_body_drops_a_table_is_refused_where_defined(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    token = gw.token("alice")
    for body in (
        f"CREATE FUNCTION {_name('f')}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE {t}; END $$",
        f"CREATE PROCEDURE {_name('p')}() LANGUAGE sql AS 'DROP TABLE {t}'",
        f"CREATE FUNCTION {_name('f')}() RETURNS int BEGIN ATOMIC DELETE FROM {t}; SELECT 1; END",
    ):
        result = gw.psql("alice", token, body)
        assert "refused by Hoop" in result.stderr, (body, result.stderr)
    assert _exists(direct, t) and _rows(direct, t) == 3
    row = direct.execute("SELECT count(*) FROM pg_proc WHERE prosrc LIKE %s", (f"%{t}%",)).fetchone()
    assert row is not None and row[0] == 0  # none of the functions was created


def test_call_of_a_function_created_on_the_server_is_judged_by_its_body(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    wipe, count = _name("wipe"), _name("count_rows")
    direct.execute(f"CREATE FUNCTION {wipe}() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {t}; END $$")
    direct.execute(f"CREATE FUNCTION {count}() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM {t}'")
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-wipe"):
            conn.execute(f"SELECT {wipe}()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-wipe"):
            conn.execute(f"SELECT 1 FROM (SELECT public.{wipe}()) AS s")
        row = conn.execute(f"SELECT {count}(), lower('A')").fetchone()  # harmless routine, built-in
        assert row == (3, "a")
    assert _rows(direct, t) == 3


def test_insert_firing_a_trigger_that_truncates_is_refused(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t, other = _table(direct), _table(direct)
    fn, trig = _name("tf"), _name("tr")
    direct.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN TRUNCATE {other}; RETURN NEW; END $$"
    )
    direct.execute(f"CREATE TRIGGER {trig} AFTER INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}()")
    token = gw.token("alice")
    result = gw.psql("alice", token, f"INSERT INTO {t} VALUES (10, 10)")
    assert "refused by Hoop" in result.stderr and "no-truncate" in result.stderr, result.stderr
    assert _rows(direct, t) == 3 and _rows(direct, other) == 3
    ok = gw.psql("alice", token, f"UPDATE {t} SET x = 0 WHERE id = 1")  # no UPDATE trigger: runs
    assert "UPDATE 1" in ok.stdout, ok.stderr


def test_harmless_do_block_runs_and_psql_shows_the_notice(gw, direct) -> None:  # type: ignore[no-untyped-def]
    result = gw.psql("alice", gw.token("alice"), "DO $$ BEGIN RAISE NOTICE 'hi from do'; END $$")
    assert "NOTICE:  hi from do" in result.stderr and "refused" not in result.stderr
    assert "DO" in result.stdout


def test_do_block_executing_built_text_is_refused_by_the_dynamic_mode(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    result = gw.psql("alice", gw.token("alice"), f"DO $$ BEGIN EXECUTE 'drop ' || 'table {t}'; END $$")
    assert "refused by Hoop" in result.stderr and "cannot be known" in result.stderr, result.stderr
    assert _exists(direct, t)


def test_routine_replaced_on_the_server_is_judged_anew_after_ddl(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t = _table(direct)
    f = _name("f")
    direct.execute(f"CREATE FUNCTION {f}() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
        assert conn.execute(f"SELECT {f}()").fetchone() == (1,)
        # replaced behind the gateway's back; DDL through the gateway makes it read the catalog again
        direct.execute(
            f"CREATE OR REPLACE FUNCTION {f}() RETURNS int LANGUAGE sql AS 'UPDATE {t} SET x = -1; SELECT 1'"
        )
        conn.execute(f"CREATE TABLE {_name('ddl')} (id int)")
        deadline = time.monotonic() + 20
        while True:
            try:
                conn.execute(f"SELECT {f}()")
            except psycopg.errors.InsufficientPrivilege as exc:
                assert "no-wipe" in str(exc)
                break
            assert time.monotonic() < deadline, "the replaced routine was never judged by its new body"
            direct.execute(f"UPDATE {t} SET x = id")  # undo the run that slipped through before the reload
            time.sleep(0.2)
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as fresh:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-wipe"):
            fresh.execute(f"SELECT {f}()")  # a new session reads the catalog before its first statement


def test_view_and_column_default_calling_a_routine_run_it(gw, direct) -> None:  # type: ignore[no-untyped-def]
    t, target = _table(direct), _table(direct)
    wipe, view = _name("wipe"), _name("v")
    direct.execute(
        f"CREATE FUNCTION {wipe}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM {target}; RETURN 1; END $$"
    )
    direct.execute(f"CREATE VIEW {view} AS SELECT id, {wipe}() AS w FROM {t}")
    direct.execute(f"ALTER TABLE {t} ADD COLUMN w int")
    direct.execute(f"ALTER TABLE {t} ALTER COLUMN w SET DEFAULT {wipe}()")
    token = gw.token("alice")
    for sql in (f"SELECT * FROM {view}", f"INSERT INTO {t} (id) VALUES (9)"):
        result = gw.psql("alice", token, sql)
        assert "refused by Hoop" in result.stderr and "no-wipe" in result.stderr, (sql, result.stderr)
    assert _rows(direct, target) == 3 and _rows(direct, t) == 3


def test_routine_replaced_on_the_server_during_a_session_is_judged_soon(gw, direct) -> None:  # type: ignore[no-untyped-def]
    """No DDL through the gateway: the catalog is read again every 10 s, and a statement the
    client prepared before the change is judged again at its next execution."""
    t = _table(direct)
    f = _name("later")
    direct.execute(f"CREATE FUNCTION {f}() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    with psycopg.connect(gw.dsn("alice", gw.token("alice")), autocommit=True) as conn:
        assert conn.execute(f"SELECT {f}()", prepare=True).fetchone() == (1,)
        direct.execute(
            f"CREATE OR REPLACE FUNCTION {f}() RETURNS int LANGUAGE sql AS 'UPDATE {t} SET x = -1; SELECT 1'"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute(f"SELECT {f}()", prepare=True)
            except psycopg.errors.InsufficientPrivilege as exc:
                assert "no-wipe" in str(exc)
                break
            assert time.monotonic() < deadline, "the replaced routine was never judged by its new body"
            direct.execute(f"UPDATE {t} SET x = id")
            time.sleep(0.5)


def test_session_is_refused_when_the_routines_cannot_be_read(make_gateway, pg_admin, pg_target) -> None:  # type: ignore[no-untyped-def]
    """The role may hold one connection: the session's own. The gateway cannot open its side
    connection to read the routines, so calls could not be judged: the session is refused."""
    role = _name("hoop_one")
    pg_admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    try:
        connection = f"""
[[connections]]
name = "pg"
type = "postgres"
host = "127.0.0.1"
port = 5432
database = "{pg_target["database"]}"
username = "{role}"
sslmode = "disable"
groups = ["dev"]
"""
        gw = make_gateway(RULES, connections=connection)
        result = gw.psql("alice", gw.token("alice"), "SELECT 1")
        assert "could not read the server's routines" in result.stderr, result.stdout + result.stderr
        assert gw.audit("--action", "routines.unreadable", until=bool)
    finally:
        pg_admin.execute(f"DROP ROLE IF EXISTS {role}")
