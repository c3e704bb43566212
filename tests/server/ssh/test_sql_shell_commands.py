"""The built-in SQL shell's backslash commands: `\\?`, `\\dt`, `\\d NAME`, `\\x` on PostgreSQL
(catalog queries through the door, recorded like any statement), `\\?` and a clear refusal of
the rest on MySQL. Driven through piped stdin and a real terminal."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from _pty import Term
from support.waiting import eventually


@pytest.fixture(scope="module")
def keep_table() -> None:
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as pg:
        pg.execute("DROP TABLE IF EXISTS sqlexec_keep")
        pg.execute("CREATE TABLE sqlexec_keep (id int PRIMARY KEY, label text NOT NULL DEFAULT 'x', note varchar(20))")


def test_help_lists_the_backslash_commands(gateway):
    r = gateway.ssh("alice+db", input=b"\\?\n")
    assert r.returncode == 0, r.stderr
    for command in (b"\\dt", b"\\d NAME", b"\\x", b"\\?", b"\\q"):
        assert command in r.stdout


def test_dt_lists_tables_like_psql(gateway, keep_table):
    r = gateway.ssh("alice+db", input=b"\\dt\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "List of relations" in out
    assert any(
        [c.strip() for c in line.split("|")] == ["public", "sqlexec_keep", "table", "postgres"]
        for line in out.splitlines()
    ), out


def test_d_describes_columns(gateway, keep_table):
    r = gateway.ssh("alice+db", input=b"\\d sqlexec_keep\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert 'Table "public.sqlexec_keep"' in out
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines() if "|" in line]
    assert ["Column", "Type", "Nullable", "Default"] in rows
    assert ["id", "integer", "not null", ""] in rows
    assert ["label", "text", "not null", "'x'::text"] in rows
    assert ["note", "character varying(20)", "", ""] in rows


def test_d_of_an_unknown_name_says_so_and_the_status_counts_it(gateway):
    r = gateway.ssh("alice+db", input=b"\\d no_such_relation\n")
    assert r.returncode == 1
    assert b'Did not find any relation named "no_such_relation".' in r.stderr


def test_catalog_queries_go_through_the_door_and_are_recorded(gateway, keep_table):
    r = gateway.ssh("alice+db", input=b"\\d sqlexec_keep\n")
    assert r.returncode == 0, r.stderr

    def recorded() -> None:
        texts = [
            row["text"] for row in _query(gateway, "SELECT text FROM statements WHERE text LIKE ?", ("%to_regclass%",))
        ]
        assert any("sqlexec_keep" in t and "pg_attribute" in t for t in texts), texts

    eventually(recorded)


def test_unknown_backslash_command(gateway):
    r = gateway.ssh("alice+db", input=b"\\foo\n")
    assert b"invalid command \\foo. Try \\? for help." in r.stderr
    assert r.returncode == 1


def test_expanded_display_in_a_terminal(gateway):
    t = Term(gateway.ssh_args("alice+db", "-t"))
    try:
        t.expect(r"db=> ")
        t.send("\\x\r")
        t.expect(r"Expanded display is on\.")
        t.send("select 1 as a, 'two' as bb;\r")
        t.expect(r"-\[ RECORD 1 \]")
        t.expect(r"a  \| 1")
        t.expect(r"bb \| two")
        t.send("\\x\r")
        t.expect(r"Expanded display is off\.")
        t.send("\\?\r")
        t.expect(r"\\dt")
        t.send("\\q\r")
        assert t.wait() == 0
    finally:
        t.close()


def test_mysql_shell_help_and_unsupported_commands(gateway):
    r = gateway.ssh("alice+mdb", input=b"\\?\n\\dt\nselect 'still-here' as s;\n")
    assert b"\\x" in r.stdout and b"SHOW TABLES" in r.stdout
    assert b"invalid command \\dt. Try \\? for help." in r.stderr
    assert b"still-here" in r.stdout
    assert r.returncode == 1


def _query(gateway: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    db = sqlite3.connect(gateway.dir / "data" / "hoop.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()
