"""Text the store's engines would refuse or read differently: NUL (PostgreSQL's text holds
none) and bytes that are not UTF-8. Each is stored escaped (`\\x00`, `\\xff`), readable and
alike on both engines, with the exact bytes kept beside it; nothing else is lost for it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.holds import BOB, HELD, Gate, settled
from support.stores import opened

from hoop.core import audit
from hoop.core.audit import event_connection, event_decision
from hoop.core.secrets import Secret
from hoop.core.store.base import Store
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord

NUL_TEXT = "SELECT 'a\x00b'"
NUL_USER = "ro\x00ot"


@pytest.fixture
def journal(store_target: Path | Secret, tmp_path: Path) -> Iterator[Journal]:
    j = Journal(store_target, tmp_path / "rec", interval=3600)  # flushed by hand here
    yield j
    j.close()


def test_nul_in_a_statement_a_user_and_an_audit_detail_is_stored_escaped_with_its_exact_bytes(
    journal: Journal,
) -> None:
    s = journal.open_session(NUL_USER, "pg", "mysql", "127.0.0.1:1")
    s.finished(StatementRecord(NUL_TEXT, "allow", "", time.time(), 0.1, 1, error="near '\x00'"))
    s.finished(StatementRecord("SELECT 'after'", "allow", "", time.time(), 0.1, 1))
    journal.audit(NUL_USER, "login.failure", "pg", reason="unknown user \x00", connection="pg")
    journal.flush()
    assert journal.health().healthy

    with opened(journal.target) as store:
        stored = store.query(
            "SELECT text, text_bytes, error FROM statements WHERE session_id = ? ORDER BY seq", (s.id,)
        )
        assert [r["text"] for r in stored] == [r"SELECT 'a\x00b'", "SELECT 'after'"]
        assert stored[0]["text_bytes"] == b"SELECT 'a\x00b'"  # bytes, exactly, on either engine
        assert stored[0]["error"] == r"near '\x00'"
        assert store.one("SELECT user FROM sessions WHERE id = ?", (s.id,)) == {"user": r"ro\x00ot"}
        [event] = store.query(
            f"SELECT actor, detail FROM audit WHERE action = 'login.failure' AND {event_connection(store.dialect)} = ?",
            ("pg",),
        )  # the detail is JSON each engine reads (PostgreSQL's jsonb refuses an escaped NUL)
        assert event["actor"] == r"ro\x00ot" and json.loads(event["detail"])["reason"] == r"unknown user \x00"
        assert audit.verify(store).ok


async def test_a_held_statement_and_a_reason_with_nul_are_stored_escaped(store: Store) -> None:
    gate = Gate(store)
    held = await gate.hold(HELD, text="DELETE FROM t WHERE a = '\x00'")
    assert held.id and gate.row(held.id)["statement"] == r"DELETE FROM t WHERE a = '\x00'"
    gate.approvals.decide(held.id, BOB, approve=False, reason="not\x00now")
    assert (await settled(held.task)).status == "denied"
    assert gate.row(held.id)["reason"] == r"not\x00now"


def test_an_event_recorded_directly_with_nul_is_stored_escaped_and_listed(store: Store) -> None:
    audit.record(store, "ro\x00ot", "token.issue", "pg", reason="a\x00b", connection="pg", decision="review:denied")
    audit.record(store, "bob", "statement", "my", decision="allow")
    where = f"{event_connection(store.dialect)} = ? AND ({event_decision(store.dialect)} LIKE ? || ':%')"
    [event] = audit.events(store, where=where, params=("pg", "review"))  # the listing filters of `hoop audit`
    assert event["actor"] == r"ro\x00ot" and event["detail"]["reason"] == r"a\x00b"
    assert bytes.fromhex(event["detail"]["undecodable"]["reason"]) == b"a\x00b"
    assert audit.verify(store).ok
