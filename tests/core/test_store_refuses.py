"""A PostgreSQL store that refuses writes for a while (a server gone read-only, as during a
failover) is the store failing, not the records: the journal keeps the batch, reports itself
unhealthy, and writes everything once the store takes writes again, as on a full disk
(test_journal_keeps.py)."""

from __future__ import annotations

import time
from pathlib import Path

from support.stores import StoreDatabase, rows

from hoop.core.secrets import Secret
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord


def _read_only(db: StoreDatabase, on: bool) -> None:
    """New sessions of the store's role start read-only (or not); its open ones are ended,
    so the pools reconnect under the new setting."""
    setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    db.admin.execute(f"ALTER ROLE {db.role} IN DATABASE {db.database} {setting}")
    db.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (db.role,))


def test_a_read_only_store_keeps_the_batch_reports_unhealthy_and_recovers(
    store_database: StoreDatabase, tmp_path: Path
) -> None:
    schema = store_database.new_schema()
    dsn = Secret(store_database.dsn(schema))
    journal = Journal(dsn, tmp_path / "rec", interval=3600)
    try:
        s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:1")
        s.finished(StatementRecord("SELECT 'before'", "allow", "", time.time(), 0.1, 1))
        journal.flush()
        assert journal.health().healthy
        _read_only(store_database, True)
        for i in range(3):
            s.finished(StatementRecord(f"SELECT {i}", "allow", "", time.time(), 0.1, 1))
            journal.flush()
        health = journal.health()
        assert not health.healthy and health.waiting > 0
        assert "read-only" in health.problem
        _read_only(store_database, False)
        journal.flush()
        assert journal.health().healthy and journal.health().waiting == 0
        texts = [r["text"] for r in rows(dsn, "SELECT text, error FROM statements ORDER BY seq")]
        assert texts == ["SELECT 'before'", "SELECT 0", "SELECT 1", "SELECT 2"]
        assert [r["error"] for r in rows(dsn, "SELECT error FROM statements")] == [
            ""
        ] * 4  # none became an error record
    finally:
        _read_only(store_database, False)
        journal.close()
        store_database.drop_schema(schema)
