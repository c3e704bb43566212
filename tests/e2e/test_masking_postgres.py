"""Masking through real clients: no sensitive value leaks by any route, no decoy is mangled."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from support.pgwire import SYNC, RawClient
from support.postgres import connect_target

from hoop.server.postgres import frontend

pytestmark = pytest.mark.needs_postgres

MASKING = """
[[masking]]
name = "pii"
columns = ["*.email", "public.customers.card_number", "*.password*"]
detectors = ["email", "credit_card", "us_ssn", "phone", "iban", "aws_access_key", "github_token", "jwt", "private_key"]
style = "partial"
exempt = ["security"]

[[masking]]
name = "exfiltration"
max_rows = 500

[[users]]
name = "sam"
groups = ["dev", "security"]
"""

SECRETS = {
    "email": "grace.hopper@navy.example",
    "card": "4539578763621486",
    "ssn": "219-09-9999",
    "iban": "GB82WEST12345698765432",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "password": "hunter2-correct-horse",
    "phone": "+1 415-555-0132",
}
# Values that look a little like the secrets but are not: they must come back unchanged.
DECOYS = {
    "order_no": "4539578763621487",  # 16 digits failing the Luhn check
    "sku": "2024-01-15",
    "version": "v1.2.3",
    "handle": "@grace",
    "bad_iban": "GB00WEST12345698765432",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
}


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        conn.execute("DROP TABLE IF EXISTS customers CASCADE")
        conn.execute("""CREATE TABLE customers (id int, name text, email text, card_number text, note text,
                        password_hash text, order_no text, sku text, version text, handle text, bad_iban text,
                        uuid uuid, account bigint)""")
        conn.execute(
            "INSERT INTO customers VALUES (1, 'Grace', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 4539578763621486)",
            (
                SECRETS["email"],
                SECRETS["card"],
                f"ssn {SECRETS['ssn']} iban {SECRETS['iban']} key {SECRETS['aws']} call {SECRETS['phone']}",
                SECRETS["password"],
                DECOYS["order_no"],
                DECOYS["sku"],
                DECOYS["version"],
                DECOYS["handle"],
                DECOYS["bad_iban"],
                DECOYS["uuid"],
            ),
        )
        conn.execute("INSERT INTO customers (id, name) SELECT g, 'filler ' || g FROM generate_series(2, 100) g")
        conn.execute(
            "CREATE VIEW customer_contacts AS SELECT id, email AS contact, card_number AS cc, note FROM customers"
        )
    return make_gateway(MASKING)


QUERIES = [
    "SELECT * FROM customers WHERE id = 1",
    "SELECT email AS e, card_number AS c, note AS n, password_hash AS p FROM customers WHERE id = 1",
    "SELECT * FROM customer_contacts WHERE id = 1",
    "SELECT lower(email), upper(card_number), note || '' FROM customers WHERE id = 1",
    "SELECT row_to_json(c) FROM customers c WHERE id = 1",
    "SELECT string_agg(email || ' ' || card_number || ' ' || note, ',') FROM customers",
    "SELECT account, account::text FROM customers WHERE id = 1",
]


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_psql_routes_do_not_leak_and_decoys_survive(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    for sql in QUERIES:
        result = gw.psql("alice", token, sql)
        assert result.returncode == 0, result.stderr
        assert not _leaks(result.stdout), (sql, result.stdout)
    everything = gw.psql("alice", token, "SELECT * FROM customers WHERE id = 1", "-A", "-t").stdout
    for value in DECOYS.values():
        assert value in everything
    assert "****@navy.example" in everything and "************1486" in everything
    copy = gw.psql(
        "alice", token, None, input="COPY customers TO STDOUT;\nCOPY (SELECT * FROM customers) TO STDOUT WITH CSV;\n"
    )
    assert copy.returncode == 0 and not _leaks(copy.stdout), (copy.stderr, _leaks(copy.stdout))
    assert DECOYS["order_no"] in copy.stdout and DECOYS["bad_iban"] in copy.stdout


def test_psycopg_binary_results_are_masked(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token)) as conn:
        for binary in (True, False):
            cur = conn.cursor(binary=binary)
            for sql in QUERIES:
                rows = cur.execute(sql).fetchall()
                assert not _leaks(repr(rows)), (binary, sql, rows)
            row = cur.execute("SELECT id, order_no, sku, uuid::text, account FROM customers WHERE id = 1").fetchone()
            assert row[:4] == (1, DECOYS["order_no"], DECOYS["sku"], DECOYS["uuid"])
            assert row[4] is None  # a card number in a bigint column: withheld, never raw


STATEMENT = "SELECT account, email, name FROM customers WHERE id = 1"


def _masked_row(row: list[bytes | None]) -> None:
    account, email, name = row
    assert account is None  # a card number in a bigint: withheld in either format
    assert email == b"****@navy.example" and name == b"Grace"


def test_rows_come_masked_in_the_formats_the_bind_asks_for(gw) -> None:  # type: ignore[no-untyped-def]
    """Describe 'P' shows the formats the rows come in, binary or text: masked either way.
    Describe 'S' shows text formats whatever the Bind asks: it describes text results only, and
    an Execute it would describe wrongly (binary results) is refused, never passed raw."""
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg")
    try:
        c.send(frontend.parse("s1", STATEMENT), SYNC)
        assert not c.until_ready().errors
        for formats in ([1], [0], [1, 1, 0], [0, 1, 1], []):
            bind = frontend.bind("", "s1", result_formats=formats)
            c.send(bind, frontend.describe("P", ""), frontend.execute(), SYNC)
            reply = c.until_ready()
            assert not reply.errors and len(reply.rows) == 1, (formats, reply.errors)
            _masked_row(reply.rows[0])
        for formats in ([0], [0, 0, 0], []):
            c.send(
                frontend.describe("S", "s1"), frontend.bind("", "s1", result_formats=formats), frontend.execute(), SYNC
            )
            reply = c.until_ready()
            assert not reply.errors and len(reply.rows) == 1, (formats, reply.errors)
            _masked_row(reply.rows[0])
        for formats in ([1], [1, 1, 0], [0, 1, 1]):
            c.send(
                frontend.describe("S", "s1"), frontend.bind("", "s1", result_formats=formats), frontend.execute(), SYNC
            )
            _refused_undescribed(c.until_ready())
    finally:
        c.close()


def _refused_undescribed(reply) -> None:  # type: ignore[no-untyped-def]
    assert not reply.rows and len(reply.errors) == 1, reply
    assert reply.errors[0]["C"] == "0A000" and "without their description" in reply.errors[0]["M"]
    assert not _leaks(repr(reply))


def test_an_execution_not_described_in_its_request_is_refused_while_masking_applies(gw) -> None:  # type: ignore[no-untyped-def]
    """Drivers that cache a statement's description send only Bind + Execute: the server then
    sends rows without a RowDescription, so the gateway cannot tell which columns to mask. It
    refuses the Execute with the reason; the session goes on, and a described one is masked."""
    c = RawClient(gw.ports["postgres"], "alice", gw.token("alice"), "pg")
    try:
        c.send(frontend.parse("s1", STATEMENT), frontend.describe("S", "s1"), SYNC)
        assert not c.until_ready().errors
        for _ in range(2):
            c.send(frontend.bind("", "s1"), frontend.execute(), SYNC)
            _refused_undescribed(c.until_ready())
        # described, then another statement's portal executed: still not described
        c.send(frontend.parse("s2", "SELECT account, email, name FROM customers WHERE id = 2"), SYNC)
        assert not c.until_ready().errors
        c.send(frontend.describe("S", "s1"), frontend.bind("", "s2"), frontend.execute(), SYNC)
        _refused_undescribed(c.until_ready())
        c.send(frontend.bind("", "s1"), frontend.describe("P", ""), frontend.execute(), SYNC)
        reply = c.until_ready()
        assert not reply.errors and len(reply.rows) == 1
        _masked_row(reply.rows[0])
    finally:
        c.close()


def test_exempt_group_sees_clear_values_and_is_audited(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("sam")
    result = gw.psql("sam", token, "SELECT email, card_number FROM customers WHERE id = 1")
    assert SECRETS["email"] in result.stdout and SECRETS["card"] in result.stdout
    events = gw.audit("--action", "mask.exempt", until=bool)
    assert events and events[0]["actor"] == "sam" and events[0]["detail"]["rules"] == ["pii"]


def test_row_limit_stops_the_statement_and_session_goes_on(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    with psycopg.connect(gw.dsn("alice", token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="limit of 500 rows"):
            conn.execute("SELECT g FROM generate_series(1, 100000) g").fetchall()
        assert len(conn.execute("SELECT g FROM generate_series(1, 500) g").fetchall()) == 500


def test_recordings_and_store_hold_only_masked_values(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    for sql in QUERIES:
        gw.psql("alice", token, sql)
    time.sleep(0.5)
    gw.stop()
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".db", ".db-wal", ".log"):
            data = path.read_text(errors="replace")
            assert not _leaks(data), (path, _leaks(data))
    recordings = list(Path(gw.root, "recordings").glob("*.hoop.jsonl"))
    assert any("****@navy.example" in p.read_text() for p in recordings)
