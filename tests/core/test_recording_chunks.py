"""Recordings on a shared PostgreSQL store: the journal writer stores them as chunks in the
store (with the batch's rows), and every reader, wherever it runs, reads them from there."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.pgstore import store_database

from hoop.core import audit_check
from hoop.core.replay import replay_session
from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store
from hoop.core.store.journal import Journal
from hoop.core.store.recordings import CHUNK_BYTES, LocalCopies
from hoop.core.store.records import StatementRecord
from hoop.core.terminal import CastWriter, cast_path


@pytest.fixture
def dsn() -> Iterator[str]:
    with store_database() as dsn:
        yield dsn


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    s = open_store(dsn)
    yield s
    s.close()


def _config(recordings_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(gateway=SimpleNamespace(recordings_dir=recordings_dir))


def test_a_session_recorded_by_one_gateway_replays_from_another(dsn: str, store: Store, tmp_path: Path) -> None:
    journal = Journal(Secret(dsn), tmp_path / "a" / "recordings", interval=3600, gateway="a")
    try:
        s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:5")
        s.finished(StatementRecord("SELECT 'first'", "allow", "", time.time(), 0.5, 1))
        journal.flush()
        s.finished(StatementRecord("DROP TABLE t", "block", "no-drop", time.time(), 0.0, error="blocked"))
        s.close()
        journal.flush()
    finally:
        journal.close()
    assert not any((tmp_path / "a" / "recordings").iterdir())  # nothing on this gateway's disk
    chunks = store.query("SELECT file, seq FROM recording_chunks WHERE session_id = ? ORDER BY seq", (s.id,))
    assert [c["file"] for c in chunks] == [f"{s.id}.hoop.jsonl"] * len(chunks) and len(chunks) >= 2

    out = io.StringIO()  # another gateway: its own, empty recordings_dir
    assert replay_session(store, _config(tmp_path / "b" / "recordings"), s.id, out=out) == 0
    text = out.getvalue()
    assert "[allow]  SELECT 'first'" in text and "[block rule=no-drop]  DROP TABLE t" in text


def test_a_terminal_cast_goes_through_the_journal_into_the_store(dsn: str, store: Store, tmp_path: Path) -> None:
    journal = Journal(Secret(dsn), tmp_path / "a", interval=3600, gateway="a")
    try:
        s = journal.open_session("alice", "box", "ssh", "127.0.0.1:7")
        cast = CastWriter(cast_path(tmp_path / "a", s.id), 40, 5, sink=s.append_file)
        cast.output(b"$ echo hello\r\nhello\r\n")
        cast.flush()
        journal.flush()
        cast.output(b"x" * (CHUNK_BYTES + 10))  # one batch larger than a chunk
        cast.close()
        s.close()
        journal.flush()
    finally:
        journal.close()
    assert not (tmp_path / "a" / f"{s.id}.cast").exists()
    copies = LocalCopies(store, tmp_path / "b")
    try:
        path = copies.path(f"{s.id}.cast")
        assert path is not None and path.stat().st_size == cast.size
        assert copies.path(f"{s.id}.keyframes.jsonl") is not None
    finally:
        copies.close()
    out = io.StringIO()
    replay_session(store, _config(tmp_path / "b"), s.id, as_text=True, out=out)
    assert "hello" in out.getvalue()


def test_seals_of_stored_recordings_verify_and_a_changed_chunk_is_named(dsn: str, store: Store, tmp_path: Path) -> None:
    from hoop.core import audit_anchor

    key = tmp_path / "key"
    audit_anchor.ensure_key(key)
    settings = audit_anchor.AnchorSettings(key, tmp_path / "checkpoints", 1000, 3600.0, "warning", "text")
    journal = Journal(Secret(dsn), tmp_path / "rec", interval=3600, anchor=settings, gateway="a")
    try:
        s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:5")
        s.finished(StatementRecord("SELECT 1", "allow", "", time.time(), 0.5, 1))
        s.close()
        journal.flush()
    finally:
        journal.close()
    report = audit_check.verify(store, tmp_path / "checkpoints", key, recordings=True)
    assert report.ok, report.problems
    assert any("1 sealed files match" in line for line in report.passed)

    store.execute("UPDATE recording_chunks SET data = ? WHERE session_id = ? AND seq = 0", (b"tampered", s.id))
    report = audit_check.verify(store, tmp_path / "checkpoints", key, recordings=True)
    assert not report.ok
    assert any(f"recording_chunks/{s.id}.hoop.jsonl" in p and "truncated" in p for p in report.problems)


def test_a_batch_the_store_refuses_leaves_no_chunk_and_lands_whole_later(
    dsn: str, store: Store, tmp_path: Path
) -> None:
    journal = Journal(Secret(dsn), tmp_path / "rec", interval=3600, gateway="a")
    try:
        s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:5")
        s.finished(StatementRecord("SELECT 'one'", "allow", "", time.time(), 0.5, 1))
        journal.flush()
        before = store.query("SELECT seq, data FROM recording_chunks ORDER BY seq")
        # The server refuses the batch's statement rows as a full disk would (SQLSTATE 53100),
        # after the batch's chunks were inserted in the same transaction.
        store.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full' USING ERRCODE = '53100'; END $$"
        )
        store.execute("CREATE TRIGGER refuse BEFORE INSERT ON statements FOR EACH ROW EXECUTE FUNCTION refuse()")
        s.finished(StatementRecord("SELECT 'two'", "allow", "", time.time(), 0.5, 1))
        journal.flush()
        journal.flush()  # offered again: refused again
        assert not journal.health().healthy
        assert store.query("SELECT seq, data FROM recording_chunks ORDER BY seq") == before
        assert store.one("SELECT count(*) AS n FROM statements")["n"] == 1  # type: ignore[index]

        store.execute("DROP TRIGGER refuse ON statements")
        journal.flush()
        assert journal.health().healthy
    finally:
        journal.close()
    out = io.StringIO()
    replay_session(store, _config(tmp_path / "other"), s.id, out=out)
    assert out.getvalue().count("SELECT 'one'") == 1 and out.getvalue().count("SELECT 'two'") == 1
    seqs = [
        r["seq"] for r in store.query("SELECT seq FROM recording_chunks WHERE session_id = ? ORDER BY seq", (s.id,))
    ]
    assert seqs == list(range(len(seqs)))


def test_a_live_view_copies_only_the_chunks_it_has_not_seen(dsn: str, store: Store, tmp_path: Path) -> None:
    journal = Journal(Secret(dsn), tmp_path / "a", interval=3600, gateway="a")
    copies = LocalCopies(store, tmp_path / "b")
    try:
        s = journal.open_session("alice", "box", "ssh", "127.0.0.1:7")
        cast = CastWriter(cast_path(tmp_path / "a", s.id), 40, 5, sink=s.append_file)
        assert copies.path(f"{s.id}.cast") is None  # nothing yet
        cast.output(b"first screen\r\n")
        cast.flush()
        journal.flush()
        path = copies.path(f"{s.id}.cast")
        assert path is not None and b"first screen" in path.read_bytes()
        cast.output(b"second screen\r\n")
        cast.flush()
        journal.flush()
        assert copies.path(f"{s.id}.cast") == path
        text = path.read_bytes()
        assert text.count(b"first screen") == 1 and b"second screen" in text and len(text) == cast.size
    finally:
        copies.close()
        journal.close()
    assert not path.exists()  # the private copy is removed with the view
