"""The password in a PostgreSQL store's DSN is a credential: it never shows up in an error, a
log line, the journal writer's argv or environment, or a stored row. The run's store role has
a canary password (support/stores.py), used in every DSN here."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import pytest
from support.stores import StoreDatabase, everything_stored, opened

from hoop.core import audit
from hoop.core.secrets import Secret
from hoop.core.store.base import StoreUnavailable, open_store
from hoop.core.store.journal import Journal
from hoop.core.store.records import StatementRecord


def _unreachable(db: StoreDatabase) -> dict[str, str]:
    good = db.dsn()
    return {
        "no such database": good.replace(f"/{db.database}", "/hoop_no_such_db"),
        "nothing listening": good.replace(":5432/", ":1/"),
        "an unknown option": good + "?no_such_option=1",
        "an unreadable host": good.replace("127.0.0.1", "[::1"),
    }


@pytest.mark.parametrize("case", ["no such database", "nothing listening", "an unknown option", "an unreadable host"])
def test_a_store_that_cannot_be_opened_says_why_without_the_password(
    store_database: StoreDatabase, case: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        open_store(Secret(_unreachable(store_database)[case]))
    assert time.monotonic() - started < 4  # the reason comes at once, not after a pool's timeout
    message = str(err.value)
    assert message.startswith(("the store at postgresql://", "the store DSN cannot be read"))
    assert len(message) > 40  # a reason follows, not only where
    shown = message + "".join(traceback.format_exception(err.value)) + caplog.text + "".join(capfd.readouterr())
    assert store_database.password not in shown


def test_the_password_is_nowhere_the_store_and_its_writer_leave_traces(
    store_database: StoreDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    schema = store_database.new_schema()
    dsn = Secret(store_database.dsn(schema))
    canary = store_database.password
    try:
        journal = Journal(dsn, tmp_path / "rec", interval=3600)
        try:
            writer = journal._writer
            argv = Path(f"/proc/{writer.pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{writer.pid}/environ").read_bytes()
            assert b"hoop.core.store.journal_writer" in argv  # the right process was looked at
            assert canary.encode() not in argv and canary.encode() not in environ
            s = journal.open_session("alice", "pg", "postgres", "127.0.0.1:5")
            s.finished(StatementRecord("SELECT 1", "allow", "", time.time(), 0.1, 1))
            journal.audit("alice", "note", "pg")
            journal.flush()
        finally:
            journal.close()
        with opened(dsn) as store:
            assert store.one("SELECT count(*) AS n FROM statements") == {"n": 1}  # the rows are there
            assert audit.verify(store).ok
            stored = everything_stored(store)
            assert "SELECT 1" in stored and canary not in stored
            assert canary not in f"{store.describe()} {store.target!r} {store.target} {store!r}"
        recordings = b"".join(p.read_bytes() for p in (tmp_path / "rec").iterdir())
        assert canary.encode() not in recordings
        assert canary not in caplog.text and canary not in "".join(capfd.readouterr())
    finally:
        store_database.drop_schema(schema)


def test_what_the_connection_pool_logs_has_the_password_taken_out(
    store_database: StoreDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The pool logs libpq's words each time it fails to reconnect during an outage."""
    caplog.set_level(logging.DEBUG)
    schema = store_database.new_schema()
    try:
        with opened(Secret(store_database.dsn(schema))):
            for name in ("psycopg.pool", "psycopg"):
                logging.getLogger(name).warning("error connecting: %s", store_database.dsn(schema))
    finally:
        store_database.drop_schema(schema)
    assert caplog.text.count("****") == 2 and store_database.password not in caplog.text
