"""Values typed into statements through psql: what is stored and shown is masked, what runs is
the statement as typed, and an approver sees its true structure (only credentials and values
that match a detector are masked, each inside its own literal)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support.postgres import connect_target, on_server
from support.rules import rule_toml

pytestmark = pytest.mark.needs_postgres

# Inserts into `contacts` and password changes wait for a dba.
RULES = rule_toml(
    "hold-contacts", "review", statements=["insert", "update"], tables=["contacts"], approvers=["dba"], timeout="30s"
) + rule_toml("builtin-password-change", "review", flags=["password_change"], approvers=["dba"], timeout="30s")

EMAIL, CARD = "cy@example.com", "5500000000000004"
INSERT = f"INSERT INTO {{table}} VALUES ('{EMAIL}', '{CARD}')"


@pytest.fixture
def gw(make_gateway, pg_target):  # type: ignore[no-untyped-def]
    with connect_target(pg_target) as conn:
        for table in ("people", "contacts"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (email text, card text, note text, name text)")
    gateway = make_gateway(RULES)
    gateway.direct = lambda sql: on_server(pg_target, sql)  # type: ignore[attr-defined]
    return gateway


def _held_psql(gw, user: str, sql: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        ["psql", f"host=127.0.0.1 port={gw.ports['postgres']} user={user} dbname=pg sslmode=disable", "-X", "-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": gw.token(user)},
    )


def _pending(gw) -> dict[str, object]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = json.loads(gw.cli("approvals", "--json").stdout)
        if pending:
            return pending[0]  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def _stored_texts(gw, needle: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The statement as the store, the audit and the recording keep it (after the journal wrote it)."""
    events = gw.audit("--action", "statement", until=lambda evs: any(needle in json.dumps(e) for e in evs))
    audit = next(e["detail"]["text"] for e in events if needle in e["detail"]["text"])
    recordings = "".join(p.read_text() for p in Path(gw.root, "recordings").glob("*.hoop.jsonl"))
    frames = [json.loads(line) for line in recordings.splitlines()[1:] if line.startswith("[")]
    recorded = next(f[2]["text"] for f in frames if f[1] == "q" and needle in f[2]["text"])
    from hoop.core.store.sqlite import SqliteStore

    store = SqliteStore(Path(gw.root, "data", "hoop.db"))
    try:
        stored = store.one("SELECT text FROM statements WHERE text LIKE ? ORDER BY id DESC", (f"%{needle}%",))
    finally:
        store.close()
    assert stored is not None
    return {"audit": audit, "recording": recorded, "statements": stored["text"]}


def test_values_typed_into_a_statement_are_stored_masked_and_run_as_typed(gw) -> None:  # type: ignore[no-untyped-def]
    token = gw.token("alice")
    result = gw.psql("alice", token, INSERT.format(table="people"))
    assert result.returncode == 0 and "INSERT 0 1" in result.stdout, result.stderr
    assert gw.direct("SELECT email, card FROM people") == [(EMAIL, CARD)]  # the server got the true values
    for where, text in _stored_texts(gw, "INSERT INTO people").items():
        assert text == "INSERT INTO people VALUES ('****@example.com', '************0004')", where
    gw.stop()
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            data = path.read_bytes()
            assert EMAIL.encode() not in data and CARD.encode() not in data, path


def test_an_approver_sees_the_held_statement_masked_and_approving_runs_the_true_one(gw) -> None:  # type: ignore[no-untyped-def]
    held = _held_psql(gw, "alice", INSERT.format(table="contacts"))
    request = _pending(gw)
    assert request["statement"] == "INSERT INTO contacts VALUES ('****@example.com', '************0004')"
    listing = gw.cli("approvals").stdout
    assert "'****@example.com', '************0004'" in listing and EMAIL not in listing and CARD not in listing
    gw.cli("approve", str(request["id"]), "--token", gw.token("bob"))
    assert "INSERT 0 1" in held.communicate(timeout=10)[0]
    assert gw.direct("SELECT email, card FROM contacts") == [(EMAIL, CARD)]


def test_the_word_password_in_a_comment_masks_nothing_else(gw) -> None:  # type: ignore[no-untyped-def]
    sql = "-- password rotation ticket\nUPDATE contacts SET note = 'rotated by ops', name = 'Grace' WHERE card = '42'"
    held = _held_psql(gw, "alice", sql)
    request = _pending(gw)
    assert request["statement"] == sql  # nothing in it is a credential or matches a detector
    gw.cli("deny", str(request["id"]), "--token", gw.token("bob"), "--reason", "checked")
    held.communicate(timeout=10)


def test_a_typed_role_password_is_masked_alone_and_appears_nowhere(gw) -> None:  # type: ignore[no-untyped-def]
    canary = "CANARY-typed-pw-51d0e7"
    sql = f"SET application_name = 'rotation'; /* password */ ALTER ROLE CURRENT_USER PASSWORD '{canary}'"
    held = _held_psql(gw, "alice", sql)
    request = _pending(gw)
    assert request["statement"] == sql.replace(canary, "****")
    gw.cli("approvals")
    gw.cli("approve", str(request["id"]), "--token", gw.token("bob"))
    assert "ALTER ROLE" in held.communicate(timeout=10)[0]
    texts = _stored_texts(gw, "ALTER ROLE CURRENT_USER")
    assert set(texts.values()) == {request["statement"]}
    gw.stop()
    for path in Path(gw.root).rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            assert canary.encode() not in path.read_bytes(), f"typed password found in {path}"
    assert not [out for out in gw.outputs if canary in out]  # nor in any CLI output (approvals, audit, ...)
