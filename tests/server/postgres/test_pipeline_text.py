"""Pipelined statements whose text depends on the session's settings (non-ASCII bytes, a
backslash) after an Execute the client has not synced: the gateway learns the settings the
server will read them with, in the middle of the pipeline, and judges them under those.

Everything runs in psycopg's real pipeline mode (Parse/Bind/Describe/Execute, one Sync at the
end) through a real `hoop serve` against the real server; outcomes are compared with the same
pipeline run direct, and attacks are checked on the server's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest
from support.pgwire import SYNC, RawClient, _msg, bind, execute, parse
from support.postgres import connect_target

pytestmark = pytest.mark.needs_postgres

RULES = """
[[rules]]
name = "no-unbounded-delete"
action = "block"
statements = ["delete", "update"]
where = "missing-or-trivial"

[[rules]]
name = "no-truncate"
action = "block"
statements = ["truncate"]
"""
ROWS = 3
# Valid UTF-8, read as one harmless string under UTF-8; under SJIS 0x81 0x5C is one character,
# the string ends at the next quote and a DELETE without WHERE follows.
SJIS_ATTACK = b"SELECT E'\xc3\x81\x5c' ; DELETE FROM victims; --'"
# With standard_conforming_strings off, the backslash escapes the quote and TRUNCATE follows.
SCS_ATTACK = b"SELECT 'a\\' AS x, ' ; TRUNCATE victims; -- '"

Outcome = tuple[str, Any]


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    g = make_gateway(RULES)
    g.issue_tokens("alice")
    return g


@pytest.fixture
def victims(pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS victims")
        conn.execute("CREATE TABLE victims (id int)")
        conn.execute(f"INSERT INTO victims SELECT generate_series(1, {ROWS})")

    def count() -> int:
        with connect_target(pg_target) as conn:
            return conn.execute("SELECT count(*) FROM victims").fetchone()[0]  # type: ignore[index]

    return count


def run_pipeline(connect: Callable[[], psycopg.Connection[Any]], statements: Sequence[str | bytes]) -> list[Outcome]:
    conn = connect()
    try:
        return _outcomes(conn, statements)
    finally:
        conn.close()


def _outcomes(conn: psycopg.Connection[Any], statements: Sequence[str | bytes]) -> list[Outcome]:
    # A pipeline error aborts the rest: psycopg raises on the first failed result it reads.
    cursors = []
    errors: list[psycopg.Error] = []
    try:
        with conn.pipeline():
            for sql in statements:
                cursors.append(conn.cursor().execute(sql))  # type: ignore[call-overload]
    except psycopg.Error as exc:
        errors.append(exc)
    outcomes: list[Outcome] = []
    for cur in cursors:
        try:
            outcomes.append(("rows", cur.fetchall() if cur.pgresult and cur.description else cur.statusmessage))
        except psycopg.Error as exc:
            outcomes.append(("error", exc.sqlstate))
    if errors:
        outcomes.append(("raised", (errors[0].sqlstate, str(errors[0]).splitlines()[0])))
    return outcomes


def through(gw: Any) -> Callable[[], psycopg.Connection[Any]]:
    return lambda: psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True)


def direct(pg_target: dict[str, str]) -> Callable[[], psycopg.Connection[Any]]:
    return lambda: connect_target(pg_target)


def test_non_ascii_after_an_execute_runs(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    statements = ["select 1", "select 'héllo'", "select 'naïve', 'a\\b'"]
    got = run_pipeline(through(gw), statements)
    assert got == [("rows", [(1,)]), ("rows", [("héllo",)]), ("rows", [("naïve", "a\\b")])]
    assert got == run_pipeline(direct(pg_target), statements)


def test_a_latin1_text_is_read_as_latin1(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    """psycopg encodes the second statement before it hears of the new setting; the server
    reads its bytes as LATIN1, and so must the gateway (0xE9 alone is not UTF-8 at all)."""
    for switch in ("SET client_encoding TO 'LATIN1'", "SELECT set_config('client_encoding', 'LATIN1', false)"):
        # (the row in bytes: psycopg would decode the text with the encoding it started with)
        statements = [switch, b"SELECT convert_to('\xe9', 'UTF8') AS e, length('\xc3\xa9') AS n"]
        got = run_pipeline(through(gw), statements)
        assert got[1] == ("rows", [(b"\xc3\xa9", 2)]), got  # 0xE9 is 'é'; 0xC3 0xA9 two characters
        assert got == run_pipeline(direct(pg_target), statements)


@pytest.mark.parametrize(
    ("switch", "attack", "rule"),
    [
        ("SET client_encoding TO 'SJIS'", SJIS_ATTACK, "no-unbounded-delete"),
        ("SELECT set_config('client_encoding', 'SJIS', false)", SJIS_ATTACK, "no-unbounded-delete"),
        ("SET standard_conforming_strings = off", SCS_ATTACK, "no-truncate"),
        ("SELECT set_config('standard_conforming_strings', 'off', false)", SCS_ATTACK, "no-truncate"),
    ],
)
def test_an_attack_hidden_by_the_new_setting_is_still_blocked(
    gw, victims, switch: str, attack: bytes, rule: str
) -> None:  # type: ignore[no-untyped-def]
    got = run_pipeline(through(gw), ["select 1", switch, attack, "select 2"])
    assert got[0] == ("rows", [(1,)]), got
    assert got[-1][0] == "raised" and got[-1][1][0] == "42501", got
    assert rule in got[-1][1][1], got
    assert victims() == ROWS


def test_a_failing_statement_before_keeps_the_servers_error_sequence(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    statements = ["select 1", "select 'é'", "select 1/0", "select 'héllo'", "select 'wörld'"]
    got = run_pipeline(through(gw), statements)
    assert got == run_pipeline(direct(pg_target), statements)
    assert got[-1] == ("raised", ("22012", "division by zero")), got


def test_the_session_goes_on_after_the_pipeline(gw) -> None:  # type: ignore[no-untyped-def]
    """Nothing the gateway asked shows: no prepared statement, no cursor, the unnamed statement
    and portal intact, and later pipelines judged again."""
    with through(gw)() as conn:
        conn.execute("PREPARE mine AS SELECT 'é'")
        with conn.pipeline():
            a = conn.execute("SELECT 'x'", prepare=True)
            b = conn.execute("SELECT 'ü'")
            c = conn.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
            d = conn.execute("SELECT count(*) FROM pg_cursors WHERE name <> ''")  # (the unnamed portal: this one)
        assert a.fetchall() == [("x",)] and b.fetchall() == [("ü",)]
        assert [r[0] for r in c.fetchall() if not r[0].startswith("_pg")] == ["mine"]
        assert d.fetchall() == [(0,)]
        assert run_again(conn) == [("rows", [("ä",)])] * 3


def run_again(conn: psycopg.Connection[Any]) -> list[Outcome]:
    return _outcomes(conn, ["SELECT 'ä'"] * 3)


def test_a_slow_statement_before_refuses_with_the_reason(gw, pg_target) -> None:  # type: ignore[no-untyped-def]
    got = run_pipeline(through(gw), ["select pg_sleep(11)", "select 'héllo'"])
    assert got[0] == ("rows", [("",)]), got
    assert got[-1][0] == "raised" and got[-1][1][0] == "55000", got
    assert "did not finish within 10 s" in got[-1][1][1], got


def test_every_reply_before_the_held_parse_reaches_the_client_in_order(gw) -> None:  # type: ignore[no-untyped-def]
    """Describe, Close, a row-limited Execute (PortalSuspended) and a named statement before
    the held Parse: the client gets exactly the server's replies to its own messages."""

    def close(kind: bytes, name: bytes) -> bytes:
        return _msg(b"C", kind + name + b"\0")

    def describe(kind: bytes, name: bytes) -> bytes:
        return _msg(b"D", kind + name + b"\0")

    c = RawClient(gw.ports["postgres"], "alice", gw.tokens["alice"], "pg")
    c.send(
        parse(b"SELECT generate_series(1, 3)", b"s1"),
        describe(b"S", b"s1"),
        bind(b"s1", b"p1"),
        describe(b"P", b"p1"),
        _msg(b"E", b"p1\0" + (1).to_bytes(4, "big")),  # one row, then PortalSuspended
        close(b"P", b"p1"),
        close(b"S", b"s1"),
        parse(b"SELECT 'h\xc3\xa9llo'"),
        bind(),
        execute(),
        SYNC,
    )
    kinds = []
    while True:
        kind, payload = c._read()
        kinds.append((kind, payload))
        if kind == b"Z":
            break
    c.close()
    assert [k for k, _ in kinds] == [b"1", b"t", b"T", b"2", b"T", b"D", b"s", b"3", b"3", b"1", b"2", b"D", b"C", b"Z"]
    assert kinds[5][1].endswith(b"1") and kinds[11][1].endswith("héllo".encode())
