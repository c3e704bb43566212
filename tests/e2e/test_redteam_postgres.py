"""Walking around the PostgreSQL door's guardrails with other members of known bypass classes.

Every test sends what an attacker would (psycopg, or exact wire bytes where pipelining or
encodings matter) and asserts the effect on the real server: the rows, the column, the table
are still there afterwards.
"""

from __future__ import annotations

import psycopg
import pytest
from e2e.test_parity_postgres import ROWS, RULES, client, refused
from support.pgwire import SYNC, RawClient, bind, execute, parse, query
from support.postgres import connect_target

pytestmark = pytest.mark.needs_postgres


@pytest.fixture
def victims(pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS victims")
        conn.execute("CREATE TABLE victims (id int PRIMARY KEY, name text NOT NULL, ok bool NOT NULL DEFAULT true)")
        conn.execute(f"INSERT INTO victims SELECT g, 'n' || g FROM generate_series(1, {ROWS}) g")

    def rows() -> list[tuple[object, ...]]:
        with connect_target(pg_target) as conn:
            return conn.execute("SELECT id, name FROM victims ORDER BY id").fetchall()

    return rows


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    """A gateway with the parity tests' rules (unbounded writes and TRUNCATE blocked)."""
    gateway = make_gateway(RULES)
    gateway.alice = gateway.token("alice")
    return gateway


ORIGINAL = [(i, f"n{i}") for i in range(1, ROWS + 1)]


# Predicates true for every row of `victims` that the WHERE folding once took as bounding
# the write by a column: each statement below deleted or rewrote every row.
ALWAYS_TRUE = [
    "id + 0 = id + 0",
    "NOT (id <> id)",
    "id = victims.id",
    "id IS NOT DISTINCT FROM id",
    "CASE WHEN true THEN true ELSE id = 1 END",
    "COALESCE(true, id = 1)",
    "NULLIF(id, id) IS NULL",
    "(id, 1) = (id, 1)",
    "id IN (id)",
    "id BETWEEN id AND id",
    "id = (SELECT id)",
    "id::text = id::text",
    "ok = ok",
    "NOT (id = 0 AND now() < '2000-01-01')",
    "(id = 0 AND 1 = 2) = false",
    "(id = 0 AND 1 = 2) IS NOT TRUE",
    "id = 0 OR '10'::int > '9'::int",
    "id = 0 OR 1.4::int = 1",
    "id = 0 OR 'a '::char(2) = 'a'",
    "ok OR NOT ok",
    "id = 2 OR id <> 2",
    "name IS NULL OR name IS NOT NULL",
    "NOT (ok AND NOT ok)",
    "name LIKE '%'",
    "id = ANY(ARRAY[id, 0])",
    "id OPERATOR(pg_catalog.=) id",
    "id = 0 OR 9007199254740993 = 9007199254740993.0",
]


@pytest.mark.parametrize("predicate", ALWAYS_TRUE)
def test_always_true_predicates_do_not_bound_a_delete(gw, victims, predicate: str) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-unbounded-delete"):
            conn.execute(f"DELETE FROM victims WHERE {predicate}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-unbounded-delete"):
            conn.execute(f"UPDATE victims SET name = 'gone' WHERE {predicate}")
    assert victims() == ORIGINAL


@pytest.mark.parametrize(
    "on",
    ["NOT (t.id <> t.id)", "t.id = t.id + 0 - 0 OR NOT (t.id = t.id + 0 - 0)", "COALESCE(true, t.id = s.k)"],
)
def test_always_true_merge_join_does_not_bound_its_delete(gw, victims, on: str) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-unbounded-delete"):
            conn.execute(f"MERGE INTO victims t USING (SELECT 1 AS k) s ON {on} WHEN MATCHED THEN DELETE")
    assert victims() == ORIGINAL


def test_bounded_writes_still_run(gw, victims) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        for sql in (
            "UPDATE victims SET name = 'n1' WHERE id = 1",
            "UPDATE victims SET name = 'n2' WHERE CASE WHEN id = 2 THEN true ELSE false END",
            "UPDATE victims SET name = 'n3' WHERE id IN (3, 4) AND COALESCE(name, '') <> ''",
            "DELETE FROM victims WHERE id BETWEEN 10 AND 20 OR id = (SELECT 0)",
            "DELETE FROM victims WHERE NOT (id <> 0)",
        ):
            conn.execute(sql)
    assert victims() == ORIGINAL


def test_cached_shape_does_not_stand_for_a_text_whose_literal_flips_it(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """The first text is bounded (`NOT (id <> 0)`); its twin differs in one literal and is not."""
    c = client(gw)
    assert not c.run(b"DELETE FROM victims WHERE NOT (id <> 0 AND 1 = 1)").errors
    reply = c.run(b"DELETE FROM victims WHERE NOT (id <> 0 AND 1 = 2)")
    c.close()
    assert refused(reply), reply
    assert victims() == ORIGINAL


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM victims",
        "EXPLAIN (ANALYZE off, ANALYZE) UPDATE victims SET name = 'gone'",
    ],
)
def test_explain_runs_the_statement_when_any_analyze_says_so(gw, victims, sql: str) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-unbounded-delete"):
            conn.execute(sql)
    assert victims() == ORIGINAL


def test_alter_column_type_using_rewrites_every_row(gw, victims) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no-unbounded-delete"):
            conn.execute("ALTER TABLE victims ALTER COLUMN name TYPE varchar USING 'gone'")
        # A plain type change keeps the values: still allowed.
        conn.execute("ALTER TABLE victims ALTER COLUMN name TYPE varchar(40)")
    assert victims() == ORIGINAL


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT schema_to_xml('pg_catalog', true, false, '')",
        "SELECT schema_to_xml_and_xmlschema('pg_catalog', true, false, '')",
        "SELECT database_to_xml(true, false, '')",
    ],
)
def test_xml_dumps_of_whole_schemas_do_not_reach_other_sessions(gw, sql: str) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(gw.dsn("alice", gw.alice), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="effect cannot be known"):
            conn.execute(sql)


# Ways to change how the server reads text, each followed in the SAME write by text that is
# harmless under the old settings and runs TRUNCATE under the new ones.
SCS_OFF_PAYLOAD = b"SELECT 'a\\' AS x, ' ; TRUNCATE victims; -- '"


@pytest.mark.parametrize(
    "switch",
    [
        [b"BEGIN", b"SAVEPOINT s", b"SET LOCAL standard_conforming_strings = off"],
        [b"SET standard_conforming_strings = off; RESET ALL; SET standard_conforming_strings = off"],
        [b"SELECT set_config('standard_conforming_strings', 'off', false) FROM victims LIMIT 1"],
        [b"BEGIN; SET standard_conforming_strings = off; SELECT 1/0"],
    ],
)
def test_string_mode_switch_pipelined_with_the_attack(gw, victims, switch: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    c.send(*(query(s) for s in switch), query(SCS_OFF_PAYLOAD))
    reply = c.until_ready(len(switch) + 1)
    c.close()
    assert refused(reply) or any(e["C"] == "25P02" for e in reply.errors), reply
    assert victims() == ORIGINAL


def test_string_mode_switch_in_an_unsynced_batch_then_a_query(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """Parse/Bind/Execute with no Sync, then a simple Query: the Query runs after the switch."""
    c = client(gw)
    c.send(
        parse(b"SELECT set_config('standard_conforming_strings', 'off', false)"),
        bind(),
        execute(),
        query(SCS_OFF_PAYLOAD),
        SYNC,
    )
    reply = c.until_ready(2)
    c.close()
    assert reply.errors, reply
    assert victims() == ORIGINAL


@pytest.fixture
def ascii_db(pg_admin, pg_target):  # type: ignore[no-untyped-def]
    """A database whose server encoding is SQL_ASCII: the server converts nothing, whatever
    the client's character set, and reads every byte as it is."""
    name = f"{pg_target['database']}_ascii"
    pg_admin.execute(f"DROP DATABASE IF EXISTS {name}")
    pg_admin.execute(
        f"CREATE DATABASE {name} OWNER {pg_target['role']} ENCODING 'SQL_ASCII' "
        "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    )
    with psycopg.connect(host="127.0.0.1", user=pg_target["role"], dbname=name, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE victims (id int); INSERT INTO victims SELECT generate_series(1, {ROWS})")
    yield name
    pg_admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_sjis_client_of_a_sql_ascii_database(make_gateway, pg_target, ascii_db) -> None:  # type: ignore[no-untyped-def]
    from support.postgres import pg_connection_toml

    gw = make_gateway(RULES, connections=pg_connection_toml({**pg_target, "database": ascii_db}))
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg", client_encoding="SJIS")
    assert c.login.parameters["server_encoding"] == "SQL_ASCII"
    # Read as SJIS, 0x81 0x5C is one character and the quote after it ends the string, so the
    # DELETE sits in a second string. The server reads the byte 0x5C as a backslash escaping
    # that quote: its string ends at the next quote, and the DELETE runs.
    # (The server refuses any non-ASCII byte from a client-only character set such as SJIS
    # into a SQL_ASCII database, so the gateway's reading cannot be the one that matters.)
    reply = c.run(b"SELECT E'\x81\x5c' , ' ; DELETE FROM victims; -- '")
    harmless = c.run(b"SELECT 'plain ascii'")
    c.close()
    assert reply.errors and not reply.tags, reply
    assert harmless.rows == [[b"plain ascii"]]
    with psycopg.connect(host="127.0.0.1", user=pg_target["role"], dbname=ascii_db) as conn:
        assert conn.execute("SELECT count(*) FROM victims").fetchone() == (ROWS,)


REVIEW_RULES = """
[[rules]]
name = "review-deletes"
action = "review"
statements = ["delete"]
approvers = ["dba"]
timeout = "2s"
"""


def test_a_refused_reparse_does_not_stand_for_the_statement_the_server_keeps(make_gateway, victims) -> None:  # type: ignore[no-untyped-def]
    """The server keeps the first statement of a name and refuses a second Parse of it; the
    gateway must not judge later Binds of the name by the refused second text."""
    gw = make_gateway(REVIEW_RULES)
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg")
    c.send(parse(b"DELETE FROM victims", b"s"), SYNC)  # parsing runs nothing: held at each Bind
    assert not c.until_ready().errors
    c.send(parse(b"SELECT 1", b"s"), SYNC)
    assert c.until_ready().errors[0]["C"] == "42P05"  # prepared statement "s" already exists
    c.send(bind(b"s"), execute(), SYNC)
    reply = c.until_ready()
    c.close()
    assert reply.errors and "DELETE" not in reply.tags, reply
    assert victims() == ORIGINAL


def test_a_re_parse_the_gateway_cannot_read_does_not_forget_the_kept_statement(make_gateway, victims) -> None:  # type: ignore[no-untyped-def]
    """Text the gateway cannot read is refused (the Parse fails upstream), and the server keeps
    the earlier statement of that name: later Binds must still be judged by it."""
    gw = make_gateway(REVIEW_RULES)
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg")
    c.send(parse(b"DELETE FROM victims", b"s"), SYNC)
    assert not c.until_ready().errors
    c.send(parse(b"SELECT '\xff'", b"s"), SYNC)  # not UTF-8: refused by the gateway
    assert c.until_ready().errors[0]["C"] == "22021"
    c.send(bind(b"s"), execute(), SYNC)
    reply = c.until_ready()
    c.close()
    assert reply.errors and "DELETE" not in " ".join(reply.tags), reply
    assert victims() == ORIGINAL


def _approve_next(gw) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = json.loads(gw.cli("approvals", "--json").stdout)
        if pending:
            gw.cli("approve", str(pending[0]["id"]), "--token", gw.token("bob"))
            return
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def test_an_approved_prepare_is_not_re_executed_under_a_harmless_twin(make_gateway, victims) -> None:  # type: ignore[no-untyped-def]
    """An approved `PREPARE s AS DELETE ...` creates s; its EXECUTEs are not approved. A second
    `PREPARE s AS SELECT 1` fails upstream (s exists), so `EXECUTE s` still runs the DELETE."""
    import threading

    gw = make_gateway(REVIEW_RULES.replace('"2s"', '"30s"'))
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg")
    approver = threading.Thread(target=_approve_next, args=(gw,))
    approver.start()
    assert not c.run(b"PREPARE s AS DELETE FROM victims WHERE id = 1").errors
    approver.join()
    assert c.run(b"PREPARE s AS SELECT 1").errors[0]["C"] == "42P05"
    reply = c.run(b"EXECUTE s")
    c.close()
    assert reply.errors and "DELETE 1" not in reply.tags, reply
    assert victims() == ORIGINAL


def test_string_mode_switch_then_copy_then_the_attack_in_one_write(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """The switch and a COPY FROM STDIN share one Query; the copy data, its end and the attack
    follow in the same write, before the server has answered anything."""
    from support.pgwire import _msg

    c = client(gw)
    c.send(
        query(b"SET standard_conforming_strings = off; CREATE TEMP TABLE sink (t text); COPY sink FROM STDIN"),
        _msg(b"d", b"a\\\\b\n"),
        _msg(b"c", b""),
        query(SCS_OFF_PAYLOAD),
    )
    reply = c.until_ready(2)
    c.close()
    assert refused(reply), reply
    assert victims() == ORIGINAL


def test_string_mode_switch_executed_and_flushed_then_the_attack(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """Execute + Flush runs the switch and returns its rows, but the server reports the new
    setting only before its next ReadyForQuery; the attack comes after the rows, before Sync:
    the gateway asks the server for the setting and reads the attack under it."""
    from support.pgwire import _msg

    c = client(gw)
    c.send(parse(b"SELECT set_config('standard_conforming_strings', 'off', false)"), bind(), execute(), _msg(b"H", b""))
    while c._read()[0] != b"C":  # CommandComplete of the switch: it has run upstream
        pass
    c.send(query(SCS_OFF_PAYLOAD), SYNC)
    reply = c.until_ready(2)
    c.close()
    assert refused(reply) and "no-truncate" in reply.errors[0]["M"], reply
    assert victims() == ORIGINAL
