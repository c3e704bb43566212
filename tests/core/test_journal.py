"""The journal: what sessions append reaches the store (on each engine), the recordings and the audit chain
through the writer process, in order, and survives that process dying."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.stores import opened, recorded, rows

from hoop.core import audit, recording
from hoop.core.secrets import Secret
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord


@pytest.fixture
def journal(store_target: Path | Secret, tmp_path: Path) -> Iterator[Journal]:
    j = Journal(store_target, tmp_path / "rec", interval=3600)  # flushed by hand here
    yield j
    j.close()


def test_statements_frames_and_audit_are_written_in_order(journal: Journal, tmp_path: Path) -> None:
    s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:5")
    for i in range(3):
        s.finished(StatementRecord(f"SELECT {i}", "allow", "", time.time(), 0.5, 1))
    s.finished(StatementRecord("DROP TABLE t", "block", "no-drop", time.time(), 0.0, error="blocked"))
    s.finished(StatementRecord("ALTER USER bob PASSWORD 'hunter2'", "allow", "", time.time(), 0.5, 0))
    journal.flush()

    with opened(journal.target) as store:
        stored = store.query("SELECT seq, text, decision FROM statements WHERE session_id = ? ORDER BY seq", (s.id,))
        assert [r["text"] for r in stored][:4] == ["SELECT 0", "SELECT 1", "SELECT 2", "DROP TABLE t"]
        assert stored[3]["decision"] == "block"
        assert "hunter2" not in stored[4]["text"]  # redacted by the writer before anything is stored
        session = store.one("SELECT user, statements, blocked, status FROM sessions WHERE id = ?", (s.id,))
        assert session == {"user": "alice", "statements": 5, "blocked": 1, "status": "open"}
        texts = [e["detail"] for e in store.query("SELECT detail FROM audit WHERE action = 'statement' ORDER BY id")]
        assert [f"SELECT {i}" in t for i, t in enumerate(texts[:3])] == [True, True, True]
        assert audit.verify(store).ok

    frames = list(recording.iter_frames(recorded(journal, s)))
    queries = [data["text"] for _, kind, data in frames if kind == "q"]
    assert queries[:4] == ["SELECT 0", "SELECT 1", "SELECT 2", "DROP TABLE t"]  # blocked ones too
    assert len(queries) == 5
    assert "hunter2" not in recorded(journal, s).read_text()


def test_a_killed_writer_is_replaced_and_the_batch_still_lands(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    s = journal.open_session("alice", "my", "mysql", "127.0.0.1:6")
    s.finished(StatementRecord("SELECT 'before'", "allow", "", time.time(), 0.1, 1))
    journal.flush()
    first = journal._writer
    first.kill()
    first.wait()

    s.finished(StatementRecord("SELECT 'after'", "allow", "", time.time(), 0.1, 1))
    with caplog.at_level(logging.ERROR, logger="hoop.journal"):
        journal.flush()
    assert "journal writer exited" in caplog.text
    assert journal._writer.pid != first.pid and journal._writer.poll() is None

    assert _statements(journal.target) == ["SELECT 'before'", "SELECT 'after'"]
    lines = recorded(journal, s).read_text().splitlines()
    assert sum('"q"' in line for line in lines) == 2 and lines[0].startswith('{"')  # one header only
    with opened(journal.target) as store:
        assert audit.verify(store).ok


def test_close_ends_open_sessions_and_the_writer(store_target: Path | Secret, tmp_path: Path) -> None:
    j = Journal(store_target, tmp_path / "rec", interval=3600)
    s = j.open_session("alice", "pg", "postgres", "127.0.0.1:7")
    s.finished(StatementRecord("SELECT 1", "allow", "", time.time(), 0.1, 1))
    writer = j._writer
    j.close()
    assert writer.poll() == 0
    assert rows(store_target, "SELECT status FROM sessions WHERE id = ?", s.id) == [{"status": "shutdown"}]
    assert rows(store_target, "SELECT count(*) AS n FROM statements") == [{"n": 1}]


def test_an_audit_detail_pickle_refuses_is_kept_as_text(journal: Journal) -> None:
    journal.audit("alice", "odd.detail", "pg", handle=lambda: None, n=3)
    journal.flush()
    [row] = rows(journal.target, "SELECT detail FROM audit WHERE action = 'odd.detail'")
    assert '"n":3' in row["detail"] and "function" in row["detail"]


def test_the_writer_does_not_inherit_the_gateways_secrets(
    store_target: Path | Secret, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOP_DB_PASSWORD", "canary-not-for-the-writer")
    j = Journal(store_target, tmp_path / "rec", interval=3600)
    try:
        environ = Path(f"/proc/{j._writer.pid}/environ").read_bytes()
    finally:
        j.close()
    assert b"canary-not-for-the-writer" not in environ and b"PATH=" in environ


def _statements(target: Path | Secret) -> list[str]:
    return [r["text"] for r in rows(target, "SELECT text FROM statements ORDER BY seq")]


def test_a_full_backlog_makes_sessions_wait_and_loses_nothing(store_target: Path | Secret, tmp_path: Path) -> None:
    j = Journal(store_target, tmp_path / "rec", interval=3600, max_pending=5)
    try:
        s = j.open_session("alice", "pg", "postgres", "127.0.0.1:8")  # its start frame is record 1
        for i in range(4):
            s.finished(StatementRecord(f"SELECT {i}", "allow", "", time.time(), 0.1, 1))
        late = threading.Thread(
            target=s.finished, args=(StatementRecord("SELECT 'late'", "allow", "", time.time(), 0.1, 1),)
        )
        late.start()
        late.join(timeout=0.5)
        assert late.is_alive()  # the sixth record waits: the writer has not taken the first five

        j.flush()  # the journal thread's turn: it takes the backlog, the waiting session goes on
        late.join(timeout=5)
        assert not late.is_alive()
        j.flush()
        assert _statements(store_target) == ["SELECT 0", "SELECT 1", "SELECT 2", "SELECT 3", "SELECT 'late'"]
    finally:
        j.close()


def test_a_writer_that_takes_nothing_stalls_sessions_only_for_the_limit(
    store_target: Path | Secret, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = Journal(store_target, tmp_path / "rec", interval=3600, max_pending=2, stall_limit=0.3)
    try:
        s = j.open_session("alice", "pg", "postgres", "127.0.0.1:9")
        s.finished(StatementRecord("SELECT 1", "allow", "", time.time(), 0.1, 1))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="hoop.journal"):
            s.finished(StatementRecord("SELECT 2", "allow", "", time.time(), 0.1, 1))
        assert 0.25 < time.monotonic() - started < 3
        assert "the writer took nothing for 0.3 s; appending anyway" in caplog.text
        j.flush()
        assert _statements(store_target) == ["SELECT 1", "SELECT 2"]
    finally:
        j.close()


def test_a_statement_recorded_after_its_session_closed_still_counts(journal: Journal) -> None:
    s = journal.open_session("alice", "ssh", "ssh", "127.0.0.1:5")
    s.close("killed")
    journal.flush()
    s.finished(StatementRecord("sleep 60", "allow", "", time.time(), 5.0, error="signal KILL"))  # the exec it ended
    journal.flush()
    row = rows(journal.target, "SELECT statements, status FROM sessions WHERE id = ?", s.id)
    assert row == [{"statements": 1, "status": "killed"}]
    assert [r["text"] for r in rows(journal.target, "SELECT text FROM statements WHERE session_id = ?", s.id)] == [
        "sleep 60"
    ]
