"""The journal never drops a record for what another record holds: text that is not UTF-8 is
stored escaped (the exact bytes recoverable), a record the writer cannot lay out becomes an
error record in its place, and a batch the disk refuses is kept and written once it can be."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.disk import fill, small_disk
from support.stores import opened, recorded, rows

from hoop.core import audit, recording
from hoop.core.secrets import Secret
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord

ODD = b"select 1 /* \xff\xfe */"
ODD_TEXT = ODD.decode("utf-8", "surrogateescape")  # how the doors hand such text over
ODD_USER = b"\xffroot".decode("utf-8", "surrogateescape")


@pytest.fixture
def journal(store_target: Path | Secret, tmp_path: Path) -> Iterator[Journal]:
    j = Journal(store_target, tmp_path / "rec", interval=3600)  # flushed by hand here
    yield j
    j.close()


def _rows(target: Path | Secret, sql: str, *params: Any) -> list[dict[str, Any]]:
    return rows(target, sql, *params)


def _others(journal: Journal, n: int = 10) -> list[int]:
    """Sessions of other users, each with a statement, a frame and an audit event."""
    ids = []
    for i in range(n):
        s = journal.open_session(f"user{i}", "pg", "postgres", f"127.0.0.1:{i}")
        s.finished(StatementRecord(f"SELECT {i}", "allow", "", time.time(), 0.1, 1))
        s.audit("note", n=i)
        s.close()
        ids.append(s.id)
    return ids


def test_text_that_is_not_utf8_is_stored_escaped_and_costs_nothing_else(journal: Journal) -> None:
    before = _others(journal, 5)
    odd = journal.open_session("alice", "pg", "postgres", "127.0.0.1:1")
    odd.finished(StatementRecord(ODD_TEXT, "allow", "", time.time(), 0.1, 0, error=f"bad {ODD_TEXT}"))
    odd.frame("e", {"event": "held", "text": ODD_TEXT})
    journal.audit(ODD_USER, "login.failure", "postgres", reason="unknown user", client="127.0.0.1:2")
    stranger = journal.open_session(ODD_USER, "pg", "postgres", "127.0.0.1:3")
    stranger.close()
    after = _others(journal, 5)
    journal.flush()

    db = journal.target
    texts = {r["text"] for r in _rows(db, "SELECT text FROM statements")}
    assert {f"SELECT {i}" for i in range(5)} <= texts
    sessions = {r["id"] for r in _rows(db, "SELECT id FROM sessions")}
    assert set(before + after + [odd.id, stranger.id]) <= sessions
    [row] = _rows(db, "SELECT text, text_bytes, error FROM statements WHERE session_id = ?", odd.id)
    assert row["text"] == r"select 1 /* \xff\xfe */"  # readable, the odd bytes visible
    assert row["text_bytes"] == ODD  # and exactly recoverable
    assert r"\xff" in row["error"]
    [failure] = _rows(db, "SELECT actor, detail FROM audit WHERE action = 'login.failure'")
    assert failure["actor"] == r"\xffroot"
    assert bytes.fromhex(json.loads(failure["detail"])["undecodable"]["actor"]) == b"\xffroot"
    assert len(_rows(db, "SELECT id FROM audit WHERE action = 'note'")) == 10
    with opened(db) as store:
        assert audit.verify(store).ok
    frames = list(recording.iter_frames(recorded(journal, odd)))
    assert any(data.get("text") == r"select 1 /* \xff\xfe */" for _, _, data in frames)
    assert recording.read(recorded(journal, stranger)).header["user"] == r"\xffroot"


def test_a_record_the_writer_cannot_lay_out_becomes_an_error_record(journal: Journal) -> None:
    s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:1")
    s.finished(StatementRecord("SELECT 'first'", "allow", "", time.time(), 0.1, 1))
    s.finished(StatementRecord("SELECT 'broken'", "allow", "", None, 0.1, 1))  # type: ignore[arg-type]
    s.finished(StatementRecord("SELECT 'last'", "allow", "", time.time(), 0.1, 1))
    others = _others(journal, 3)
    journal.flush()

    db = journal.target
    stored = _rows(db, "SELECT seq, text, error FROM statements WHERE session_id = ? ORDER BY seq", s.id)
    assert [r["text"] for r in stored] == ["SELECT 'first'", "SELECT 'broken'", "SELECT 'last'"]
    assert stored[1]["error"].startswith("the journal could not store this record as sent")
    [event] = _rows(db, "SELECT detail FROM audit WHERE action = 'journal.error'")
    assert json.loads(event["detail"])["seq"] == 2
    assert len(_rows(db, "SELECT id FROM sessions WHERE id IN (?,?,?)", *others)) == 3


# SQLite only: the store is a file on a disk the test fills. A PostgreSQL store that refuses
# writes is its server's matter (the journal sees StoreUnavailable alike), tested where a
# throwaway server is stopped and started again.
def test_a_full_disk_keeps_the_batch_reports_unhealthy_and_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        journal = Journal(disk / "hoop.db", disk / "rec", interval=3600)
        try:
            s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:1")
            s.finished(StatementRecord("SELECT 'before'", "allow", "", time.time(), 0.1, 1))
            journal.flush()
            assert journal.health().healthy
            filler = fill(disk)
            for i in range(200):  # until a page the store or a recording needs is not there
                s.finished(StatementRecord(f"SELECT {i}, '{'x' * 400}'", "allow", "", time.time(), 0.1, 1))
                journal.flush()
                if not journal.health().healthy:
                    break
            health = journal.health()
            assert not health.healthy and health.waiting > 0
            assert "full" in health.problem or "space" in health.problem
            filler.unlink()
            journal.flush()
            assert journal.health().healthy and journal.health().waiting == 0
            texts = [r["text"] for r in _rows(disk / "hoop.db", "SELECT text FROM statements ORDER BY seq")]
            assert texts == ["SELECT 'before'"] + [f"SELECT {n}, '{'x' * 400}'" for n in range(i + 1)]
            lines = [d["text"] for _, k, d in recording.iter_frames(s.recording_path) if k == "q"]
            assert lines == texts  # the recording has each once: a refused write left no half line
        finally:
            journal.close()
