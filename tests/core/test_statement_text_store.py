"""Statement text on its way into the store: the journal writer and a hold mask it with the
masking rules in the store's rule book, read the way each session's protocol reads it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.holds import ALICE, HELD, Gate, cancel
from support.stores import opened, recorded

from hoop.core import recording
from hoop.core.rulebook import RuleBook
from hoop.core.secrets import Secret
from hoop.core.store.base import open_store
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord

NOTES = {"name": "notes", "columns": ["customers.notes"], "style": "redact"}


@pytest.fixture
def journal(store_target: Path | Secret, tmp_path: Path) -> Iterator[Journal]:
    j = Journal(store_target, tmp_path / "rec", interval=3600)  # flushed by hand here
    yield j
    j.close()


def _run(journal: Journal, protocol: str, *texts: str, error: str = "") -> list[str]:
    s = journal.open_session("alice", "c1", protocol, "127.0.0.1:5")
    for text in texts:
        s.finished(StatementRecord(text, "allow", "", time.time(), 0.5, 1, error))
    journal.audit("alice", "mask.exempt", "c1", session=s.id, text=texts[0])
    journal.flush()
    with opened(journal.target) as store:
        rows = store.query("SELECT text, error FROM statements WHERE session_id = ? ORDER BY seq", (s.id,))
        events = store.query(
            "SELECT action, detail FROM audit WHERE action IN ('statement', 'mask.exempt') ORDER BY id"
        )
    frames = [d for _, kind, d in recording.iter_frames(recorded(journal, s)) if kind in ("q", "r")]
    *details, exempt = [d for e in events if (d := json.loads(e["detail"]))["session"] == s.id]
    for row, q, r, ev in zip(rows, frames[::2], frames[1::2], details, strict=True):
        assert row["text"] == q["text"] == ev["text"] and row["error"] == r["error"] == ev["error"]
    assert exempt["text"] == rows[0]["text"]  # any audit event's statement text is masked alike
    return [f"{r['text']} | {r['error']}" if r["error"] else r["text"] for r in rows]


def test_the_writer_masks_under_the_rule_book_and_picks_up_changes(journal: Journal) -> None:
    update = "UPDATE customers SET notes = 'asthma', name = 'Ann' WHERE mail = 'cy@example.com'"
    assert _run(journal, "postgres", update) == [
        "UPDATE customers SET notes = 'asthma', name = 'Ann' WHERE mail = '****@example.com'"
    ]
    with opened(journal.target) as store:
        RuleBook(store).save("mask", NOTES, "ops")
    assert _run(journal, "postgres", update) == [
        "UPDATE customers SET notes = '****', name = 'Ann' WHERE mail = '****@example.com'"
    ]


def test_each_session_is_read_as_its_protocol_reads_it(journal: Journal) -> None:
    text = "SELECT 1 # note for cy@example.com"
    assert _run(journal, "mysql", text) == ["SELECT 1 # note for ****@example.com"]  # a comment
    assert _run(journal, "postgres", text)[0].startswith("SELECT 1 # note for …[")  # code: withheld
    assert _run(journal, "ssh", "mail -s hi cy@example.com") == ["mail -s hi ****@example.com"]


def test_a_servers_error_echoing_the_statement_is_masked_too(journal: Journal) -> None:
    stored = _run(
        journal,
        "mysql",
        "ALTER USER 'ann'@ IDENTIFIED BY 'S3cret!x'",
        error="1064: You have an error in your SQL syntax near 'IDENTIFIED BY 'S3cret!x'' at line 1",
    )
    assert stored == [
        "ALTER USER 'ann'@ IDENTIFIED BY '****' | 1064: You have an error in your SQL syntax near "
        "'IDENTIFIED BY ****' at line 1"
    ]


async def test_a_held_statement_is_masked_by_the_rules_before_approvers_see_it(store_target: Path | Secret) -> None:
    store = open_store(store_target)
    RuleBook(store).save("mask", {**NOTES, "connections": [ALICE.connection]}, "ops")
    gate = Gate(store)
    text = "UPDATE customers SET notes = 'asthma' WHERE mail = 'cy@example.com' -- password reset"
    held = await gate.hold(HELD, text=text)
    shown = "UPDATE customers SET notes = '****' WHERE mail = '****@example.com' -- password reset"
    assert gate.row(held.id)["statement"] == shown
    assert held.session.audited[-1][1]["text"] == shown
    await cancel(held)
    store.close()
