"""Errors, notices and notifications through the PostgreSQL door carry no masked value.

The server quotes data in its messages (`invalid input syntax for type integer: "..."`), a
RAISE in a DO block prints whatever it was given, and `pg_notify` delivers any text as a
payload. With a column rule on `email` (with and without the email detector) none of them may
bring the address to the client, nor into the store or the recording; without rules every
message is exactly the server's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support.gateway import GatewayProcess
from support.postgres import connect_target

pytestmark = pytest.mark.needs_postgres

CANARY = f"msg18.canary.{secrets.token_hex(4)}@example.org"
# No detector knows this one: only the column rule can keep it out of the store.
PLAIN_CANARY = f"msg18-plain-{secrets.token_hex(6)}"
COLUMN_RULE = """
[[masking]]
name = "emails"
columns = ["msg18_users.email"]
style = "redact"
"""
DETECTOR_RULE = """
[[masking]]
name = "emails"
columns = ["email"]
detectors = ["email"]
style = "partial"
"""
CAST = "select cast(email as int) from msg18_users order by id"
NOTICE = "do $$ begin raise notice '%', (select email from msg18_users order by id limit 1); end $$"
NOTIFY = "select pg_notify('c18', email) from msg18_users"


@pytest.fixture
def table(pg_target: dict[str, str]) -> dict[str, str]:
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS msg18_users")
        conn.execute("CREATE TABLE msg18_users (id int CHECK (id > 0), email text)")
        conn.execute("INSERT INTO msg18_users VALUES (1, %s), (2, %s)", (CANARY, PLAIN_CANARY))
        conn.execute(
            "CREATE OR REPLACE FUNCTION msg18_cast() RETURNS int LANGUAGE sql"
            " AS $$ select cast(email as int) from msg18_users where id = 2 $$"
        )
    return pg_target


@pytest.fixture(params=["column rule", "column rule and detector"])
def gw(request: pytest.FixtureRequest, make_gateway: Any, table: dict[str, str]) -> GatewayProcess:
    rules = COLUMN_RULE if request.param == "column rule" else DETECTOR_RULE
    gateway: GatewayProcess = make_gateway(rules)
    gateway.issue_tokens("alice")
    return gateway


def _connect(gw: GatewayProcess) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn("alice", gw.tokens["alice"]), autocommit=True)


def _error_of(conn: psycopg.Connection[Any], sql: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql)
    return caught.value


def _diag(exc: psycopg.Error) -> str:
    d = exc.diag
    return " ".join(str(x) for x in (d.message_primary, d.message_detail, d.message_hint, d.context, d.internal_query))


def test_psycopg_error_keeps_its_code_and_loses_the_value(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        exc = _error_of(conn, CAST)
        assert exc.sqlstate == "22P02"
        assert "invalid input syntax for type integer" in str(exc)
        assert CANARY not in str(exc) and CANARY not in _diag(exc)
        # The session stays usable and an error quoting only the statement's own words is kept.
        missing = _error_of(conn, "select nosuchcolumn from msg18_users")
        assert missing.sqlstate == "42703" and '"nosuchcolumn"' in str(missing)


def test_row_and_key_details_are_masked(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        exc = _error_of(conn, "update msg18_users set id = -id where id = 2 and email is not null")
        assert exc.sqlstate == "23514" and str(exc.diag.message_detail).startswith("Failing row contains (")
        assert PLAIN_CANARY not in _diag(exc), _diag(exc)


def test_psycopg_notice_is_masked(gw: GatewayProcess) -> None:
    notices: list[str] = []
    with _connect(gw) as conn:
        conn.add_notice_handler(lambda d: notices.append(f"{d.severity} {d.message_primary} {d.context}"))
        conn.execute(NOTICE)
        conn.execute("do $$ begin raise notice 'plain words'; end $$")
    assert len(notices) == 2 and notices[0].startswith("NOTICE")
    assert not any(CANARY in n for n in notices), notices
    assert "plain words" in notices[1]


def test_notification_on_a_listening_connection_is_masked(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        conn.execute("LISTEN c18")
        conn.execute(NOTIFY + " where id = 1")
        conn.execute("select 1")
        payloads = [n.payload for n in conn.notifies(timeout=2, stop_after=1)]
    assert len(payloads) == 1 and CANARY not in payloads[0], payloads


def test_a_value_seen_in_a_result_is_masked_in_a_later_error(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        shown = conn.execute("select email from msg18_users where id = 2").fetchone()
        assert shown is not None and PLAIN_CANARY not in shown[0]
        exc = _error_of(conn, "select msg18_cast()")  # names no masked column: the value was seen
        assert exc.sqlstate == "22P02"
        assert PLAIN_CANARY not in str(exc) and PLAIN_CANARY not in _diag(exc), _diag(exc)


def test_notification_sent_inside_a_transaction_is_masked_at_commit(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        conn.execute("LISTEN c18")
        conn.execute("BEGIN")
        conn.execute(NOTIFY + " where id = 2")
        conn.execute("COMMIT")  # names no column: the notification is delivered now
        payloads = [n.payload for n in conn.notifies(timeout=2, stop_after=1)]
    assert len(payloads) == 1 and PLAIN_CANARY not in payloads[0], payloads


def test_notification_from_another_connection_goes_through_the_detectors(gw: GatewayProcess) -> None:
    if "detectors" not in gw.config.read_text():
        pytest.skip("another connection's notification is masked by seen values and detectors only")
    with _connect(gw) as listener, _connect(gw) as sender:
        listener.execute("LISTEN c18")
        sender.execute(NOTIFY + " where id = 1")
        listener.execute("select 1")
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert len(payloads) == 1 and CANARY not in payloads[0] and payloads[0].endswith("@example.org"), payloads


def test_psql_error_and_notice_are_masked(gw: GatewayProcess) -> None:
    out = gw.psql("alice", gw.tokens["alice"], None, "-v", "VERBOSITY=verbose", input=f"{CAST};\n{NOTICE};\n")
    assert "ERROR:  22P02: invalid input syntax for type integer" in out.stderr, out.stderr
    assert "NOTICE:  00000:" in out.stderr, out.stderr
    assert CANARY not in out.stdout + out.stderr


def test_stored_records_hold_the_masked_text(gw: GatewayProcess) -> None:
    with _connect(gw) as conn:
        _error_of(conn, CAST.replace("order by id", "where id = 2"))
        conn.execute(NOTICE.replace("order by id", "where id = 2"))
    replay = ""
    deadline = time.monotonic() + 10
    while "invalid input syntax" not in replay and time.monotonic() < deadline:
        time.sleep(0.2)  # the journal and the recording flush in batches
        replay = gw.cli("replay", "1", check=False).stdout
    assert "invalid input syntax" in replay, replay
    assert not _files_holding(gw.root, PLAIN_CANARY.encode())


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def plain_gw(make_gateway: Any, table: dict[str, str]) -> Iterator[GatewayProcess]:
    gateway: GatewayProcess = make_gateway("")
    gateway.issue_tokens("alice")
    yield gateway


def test_without_rules_messages_are_the_servers(plain_gw: GatewayProcess, table: dict[str, str]) -> None:
    def observe(conn: psycopg.Connection[Any]) -> list[str]:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(f"{d.severity} {d.sqlstate} {d.message_primary} {d.context}"))
        exc = _error_of(conn, CAST)
        conn.execute(NOTICE)
        conn.execute("LISTEN c18")
        conn.execute(NOTIFY + " where id = 1")
        conn.execute("select 1")
        payloads = [n.payload for n in conn.notifies(timeout=2, stop_after=1)]
        return [str(exc.sqlstate), str(exc), _diag(exc), *notices, *payloads]

    with _connect(plain_gw) as through, connect_target(table) as direct:
        seen = observe(through)
        assert seen == observe(direct)
    assert any(CANARY in s for s in seen)
