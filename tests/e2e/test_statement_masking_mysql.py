"""Values typed into statements through PyMySQL: what is stored and shown is masked, what runs
is the statement as typed, and an approver sees every part of it that is not a credential or a
value a detector matches."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from e2e.test_mysql_path import _in_thread
from support.gateway import GatewayProcess, users_toml
from support.mariadb import ROOT, mysql_connection_toml, mysql_gateway, through, throwaway_database
from support.rules import rule_toml

pytestmark = pytest.mark.needs_mariadb

USERS = users_toml({"alice": ["dev"], "bob": ["dev", "dba"]})

# Inserts into `contacts` and password changes wait for a dba.
RULES = rule_toml(
    "hold-contacts", "review", statements=["insert"], tables=["contacts"], approvers=["dba"], timeout="30s"
) + rule_toml("builtin-password-change", "review", flags=["password_change"], approvers=["dba"], timeout="30s")

EMAIL, CARD = "cy@example.com", "5500000000000004"


@pytest.fixture
def db() -> Iterator[str]:
    columns = "(email VARCHAR(80), card VARCHAR(20), name VARCHAR(40))"
    tables = [f"CREATE TABLE {t} {columns}" for t in ("people", "contacts")]
    with throwaway_database("hoop_sm", *tables) as name:
        yield name


@pytest.fixture
def gw(db: str, tmp_path: Path) -> Iterator[GatewayProcess]:
    # root upstream: the test creates a user of its own and sets its password through the gateway
    with mysql_gateway(tmp_path, USERS + mysql_connection_toml(db) + RULES, users=("alice", "bob")) as g:
        yield g


def _direct(db: str, sql: str, *args: Any) -> Any:
    conn = pymysql.connect(**ROOT, database=db, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            return cur.fetchall()
    finally:
        conn.close()


def _pending(gw: GatewayProcess) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = json.loads(gw.cli("approvals", "--json").stdout)
        if rows:
            return rows[0]  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("no approval request appeared")


def _approve_held(gw: GatewayProcess, sql: str, shown: str) -> None:
    """Run `sql` as alice; it is held, an approver sees `shown`, bob approves and it runs."""

    def run() -> None:
        with through(gw, "alice") as conn:
            conn.cursor().execute(sql)

    t, box = _in_thread(run)
    request = _pending(gw)
    assert request["statement"] == shown
    gw.cli("approvals")  # the human listing too: kept in gw.outputs for the canary search
    gw.cli("approve", str(request["id"]), "--token", gw.tokens["bob"])
    t.join(15)
    assert "err" not in box, box


def _stored(gw: GatewayProcess, needle: str) -> set[str]:
    """The statement as the audit, the statements table and the recording keep it."""
    events = gw.audit("--action", "statement", until=lambda evs: any(needle in e["detail"]["text"] for e in evs))
    texts = {e["detail"]["text"] for e in events if needle in e["detail"]["text"]}
    from hoop.core.store.sqlite import SqliteStore

    store = SqliteStore(gw.root / "data" / "hoop.db")
    try:
        texts |= {r["text"] for r in store.query("SELECT text FROM statements WHERE text LIKE ?", (f"%{needle}%",))}
    finally:
        store.close()
    for path in (gw.root / "recordings").glob("*.hoop.jsonl"):
        for line in path.read_text().splitlines()[1:]:
            frame = json.loads(line)
            if frame[1] == "q" and needle in frame[2]["text"]:
                texts.add(frame[2]["text"])
    return texts


def test_values_typed_into_a_statement_are_stored_masked_and_run_as_typed(gw: GatewayProcess, db: str) -> None:
    with through(gw, "alice") as conn:
        # PyMySQL writes the parameters into the text: O'Brien becomes 'O\'Brien'
        conn.cursor().execute("INSERT INTO people VALUES (%s, %s, %s)", (EMAIL, CARD, "O'Brien"))
    assert _direct(db, "SELECT email, card, name FROM people") == ((EMAIL, CARD, "O'Brien"),)
    assert _stored(gw, "INSERT INTO people") == {
        "INSERT INTO people VALUES ('****@example.com', '************0004', 'O\\'Brien')"
    }
    _approve_held(
        gw,
        f"INSERT INTO contacts VALUES (\"{EMAIL}\", {CARD}, 'Grace') -- password",
        "INSERT INTO contacts VALUES (\"****@example.com\", '************0004', 'Grace') -- password",
    )
    assert _direct(db, "SELECT email, card, name FROM contacts") == ((EMAIL, CARD, "Grace"),)
    gw.stop()
    for path in gw.root.rglob("*"):
        if path.is_file() and path.name != "hoop.toml":
            data = path.read_bytes()
            assert EMAIL.encode() not in data and CARD.encode() not in data, path


def test_typed_account_passwords_are_masked_alone_and_appear_nowhere(gw: GatewayProcess, db: str) -> None:
    user = f"hoop_sm_{secrets.token_hex(4)}"
    canaries = [f"CANARY-{i}-{secrets.token_hex(6)}" for i in range(4)]
    account = f"'{user}'@'127.0.0.1'"
    try:
        for sql in (
            f"CREATE USER {account} IDENTIFIED BY '{canaries[0]}'",
            f"SET PASSWORD FOR {account} = PASSWORD('{canaries[1]}')",
            f"ALTER USER {account} IDENTIFIED VIA mysql_native_password USING PASSWORD('{canaries[2]}')",
            f"GRANT SELECT ON `{db}`.* TO {account} IDENTIFIED BY '{canaries[3]}'",
        ):
            shown = sql
            for canary in canaries:
                shown = shown.replace(canary, "****")
            _approve_held(gw, sql, shown)
            assert _stored(gw, sql[:20]) >= {shown}
        # the statements ran with the true passwords: the last one logs in
        pymysql.connect(host="127.0.0.1", port=3306, user=user, password=canaries[3], database=db).close()
        gw.stop()
        for path in gw.root.rglob("*"):
            if path.is_file() and path.name != "hoop.toml":
                data = path.read_bytes()
                assert not [c for c in canaries if c.encode() in data], f"typed password found in {path}"
        assert not [out for out in gw.outputs if any(c in out for c in canaries)]
    finally:
        _direct(db, f"DROP USER IF EXISTS {account}")
