"""The gateway reads PostgreSQL text exactly as the server will, whatever the session's settings.

Each attack below was reproduced against an earlier gateway that decoded text as UTF-8 and
parsed under default settings: a blocked statement ran upstream. Every test asserts the
effect on the real server (the rows are still there), not only the gateway's answer.
"""

from __future__ import annotations

import psycopg
import pytest
from support.pgwire import SYNC, RawClient, bind, execute, parse, query
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

# A quote, then bytes that end the string for the server but not for a gateway reading the
# wrong encoding, then the statement the rules block. Each prefix is valid UTF-8 too (so a
# UTF-8 reading sees one harmless string), and ends in a character whose last byte is 0x5C
# (backslash) in the session's encoding.
SMUGGLED = {
    "SJIS": b"\xc3\x81\x5c",  # UTF-8: 'Á\'; SJIS: half-width kana, then 0x81 0x5C
    "BIG5": b"\xe4\xb8\xa1\x5c",  # UTF-8: U+4E21 + '\'; BIG5: 0xE4 0xB8, then 0xA1 0x5C
    "GBK": b"\xe4\xb8\x81\x5c",  # UTF-8: U+4E01 + '\'; GBK: 0xE4 0xB8, then 0x81 0x5C
    "GB18030": b"\xe4\xb8\x81\x5c",
    "JOHAB": b"\xe4\xb8\xa1\x5c",
}


def payload(encoding: str) -> bytes:
    return b"SELECT E'" + SMUGGLED[encoding] + b"' ; DELETE FROM victims; --'"


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


@pytest.fixture
def gw(make_gateway):  # type: ignore[no-untyped-def]
    gateway = make_gateway(RULES)
    gateway.alice = gateway.token("alice")
    return gateway


def client(gw, **params: str) -> RawClient:  # type: ignore[no-untyped-def]
    return RawClient(gw.ports["postgres"], "alice", gw.alice, "pg", **params)


def refused(reply) -> bool:  # type: ignore[no-untyped-def]
    return any("refused by Hoop" in e.get("M", "") for e in reply.errors)


@pytest.mark.parametrize("encoding", sorted(SMUGGLED))
def test_client_encoding_at_startup(gw, victims, encoding: str) -> None:  # type: ignore[no-untyped-def]
    c = client(gw, client_encoding=encoding)
    reply = c.run(payload(encoding))
    c.close()
    assert refused(reply), reply
    assert "no-unbounded-delete" in reply.errors[0]["M"]
    assert victims() == ROWS


@pytest.mark.parametrize(
    "switch",
    [
        b"SET client_encoding TO 'SJIS'",
        b"SET NAMES 'SJIS'",
        b"SELECT set_config('client_encoding', 'SJIS', false)",
        b"BEGIN; SET LOCAL client_encoding = 'SJIS'",
    ],
)
def test_client_encoding_changed_in_session(gw, victims, switch: bytes) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    assert not c.run(switch).errors
    reply = c.run(payload("SJIS"))
    c.close()
    assert refused(reply), reply
    assert victims() == ROWS


def test_encoding_switch_pipelined_with_the_attack(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """Both messages in one write: the second must be read under the setting the first makes."""
    c = client(gw)
    c.send(query(b"SELECT set_config('client_encoding', 'SJIS', false)"), query(payload("SJIS")))
    reply = c.until_ready(2)
    c.close()
    assert refused(reply), reply
    assert victims() == ROWS


def test_encoding_switch_inside_one_extended_batch_is_read_under_the_new_setting(gw, victims) -> None:  # type: ignore[no-untyped-def]
    """No Sync between the switch and the attack: the gateway asks the server for the setting."""
    c = client(gw)
    switch = b"SELECT set_config('client_encoding', 'SJIS', false)"
    c.send(parse(switch), bind(), execute(), parse(payload("SJIS")), bind(), execute(), SYNC)
    reply = c.until_ready()
    c.close()
    assert reply.rows == [[b"SJIS"]] and reply.tags == ["SELECT 1"], reply
    assert refused(reply) and "no-unbounded-delete" in reply.errors[0]["M"], reply
    assert victims() == ROWS


def test_ascii_statements_pipelined_after_a_setting_change_run(gw, victims) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    c.send(query(b"SET client_encoding TO 'LATIN1'"), query(b"SELECT count(*) FROM victims"))
    reply = c.until_ready(2)
    c.close()
    assert not reply.errors and reply.rows == [[b"3"]]


@pytest.mark.parametrize(
    "how",
    [{"options": "-c standard_conforming_strings=off"}, {"options": "--standard_conforming_strings=off"}, None],
)
def test_standard_conforming_strings_off(gw, victims, how) -> None:  # type: ignore[no-untyped-def]
    c = client(gw, **(how or {}))
    if how is None:
        assert not c.run(b"SET standard_conforming_strings = off").errors
    reply = c.run(b"SELECT 'a\\' AS x, ' ; TRUNCATE victims; -- '")
    assert refused(reply) and "no-truncate" in reply.errors[0]["M"], reply
    harmless = c.run(b"SELECT 'it\\'s', 'back\\\\slash'")
    c.close()
    assert not harmless.errors and harmless.rows == [[b"it's", b"back\\slash"]]
    assert victims() == ROWS


def test_harmless_text_in_other_encodings_works(gw, victims) -> None:  # type: ignore[no-untyped-def]
    latin1 = client(gw, client_encoding="LATIN1")
    assert latin1.run(b"SELECT '\xe9t\xe9'").rows == [[b"\xe9t\xe9"]]  # 'été', one byte a letter
    latin1.close()
    sjis = client(gw, client_encoding="SJIS")
    so = "ソ表".encode("shift_jis")  # both end in the byte 0x5C
    assert so.endswith(b"\x5c") and so[1:2] == b"\x5c"
    reply = sjis.run(b"SELECT '" + so + b"', 1")
    sjis.close()
    assert not reply.errors and reply.rows == [[so, b"1"]]
    with psycopg.connect(gw.dsn("alice", gw.alice, client_encoding="WIN1252")) as conn:
        assert conn.execute("SELECT 'café €'").fetchone() == ("café €",)


def test_text_the_gateway_cannot_read_is_refused_with_the_reason(gw, victims) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    bad = c.run(b"SELECT 1 /* \xff */")
    assert bad.errors[0]["C"] == "22021" and "UTF8" in bad.errors[0]["M"], bad
    assert c.run(b"SET client_encoding TO 'EUC_TW'").errors == []
    unsupported = c.run(b"SELECT '\xa4\xa1'")
    assert unsupported.errors[0]["C"] == "0A000" and "EUC_TW" in unsupported.errors[0]["M"]
    assert c.run(b"SELECT 2").rows == [[b"2"]]  # ASCII reads the same: the session goes on
    c.close()
    with pytest.raises(ConnectionError, match="EUC_TW"):
        client(gw, client_encoding="EUC_TW")


@pytest.mark.parametrize(
    "options",
    ["-c session_preload_libraries=auto_explain", "-c log_statement=none", "--log_min_duration_statement=-1", "-X"],
)
def test_startup_options_outside_the_allow_list_are_refused(gw, options: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionError, match="not allowed through Hoop"):
        client(gw, options=options)
    with pytest.raises(ConnectionError, match="log_statement"):
        client(gw, log_statement="none")


def test_ordinary_startup_parameters_pass(gw) -> None:  # type: ignore[no-untyped-def]
    c = client(
        gw,
        application_name="report",
        DateStyle="ISO, DMY",
        TimeZone="UTC",
        extra_float_digits="3",
        search_path="public",
        options="-c statement_timeout=5s",
    )
    reply = c.run(b"SELECT current_setting('application_name'), current_setting('statement_timeout')")
    # The string mode is pinned by the startup packet, which a reloaded server default cannot override.
    pinned = c.run(b"SELECT setting, source FROM pg_settings WHERE name = 'standard_conforming_strings'")
    c.close()
    assert reply.rows == [[b"report", b"5s"]]
    assert pinned.rows == [[b"on", b"client"]]


def test_decision_cache_is_not_poisoned_by_a_harmless_twin(gw, victims) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    assert not c.run(b"delete from victims where id=1000 or 1=2").errors
    reply = c.run(b"delete from victims where id=1000 or 1=1")
    assert refused(reply), reply
    # The same class through bind parameters: the value decides, so it cannot be taken as bounded.
    c.send(parse(b"delete from victims where id = 1000 or $1::bool"), bind(), execute(), SYNC)
    assert refused(c.until_ready())
    c.close()
    assert victims() == ROWS


def test_prepare_and_execute_in_one_message(gw) -> None:  # type: ignore[no-untyped-def]
    c = client(gw)
    reply = c.run(b"PREPARE two AS SELECT 1 + 1; EXECUTE two")
    c.close()
    assert not reply.errors and reply.rows == [[b"2"]]


def test_65535_bind_parameters(gw) -> None:  # type: ignore[no-untyped-def]
    n = 65535
    with psycopg.connect(gw.dsn("alice", gw.alice)) as conn:
        sql = "SELECT cardinality(ARRAY[" + ",".join(["%s::int"] * n) + "])"
        assert conn.execute(sql, list(range(n))).fetchone() == (n,)
