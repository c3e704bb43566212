"""The TUI's history reads on each store engine: searching recordings by user, connection,
date or statement text finds the same sessions, in the same order, without regard to case."""

from __future__ import annotations

import time
from pathlib import Path

from hoop.core.store.base import Store
from hoop.tui.data import History

STARTED = 1_700_000_000.0


def _session(store: Store, sid: int, user: str, connection: str, *texts: str) -> None:
    store.execute(
        "INSERT INTO sessions(id, user, connection, protocol, started) VALUES (?,?,?,?,?)",
        (sid, user, connection, "postgres", STARTED + sid * 86400),
    )
    for seq, text in enumerate(texts, 1):
        store.execute(
            "INSERT INTO statements(session_id, seq, started, text) VALUES (?,?,?,?)", (sid, seq, STARTED, text)
        )


def test_search_finds_sessions_alike_on_each_engine(store: Store, tmp_path: Path) -> None:
    _session(store, 1, "Alice", "prod", "SELECT * FROM Orders")
    _session(store, 2, "bob", "staging", "select 1", "DELETE FROM orders")
    _session(store, 3, "carol", "prod", "SELECT 2")
    _session(store, 4, "dave", "dev", "update orders set x = 1")
    history = History(store, tmp_path)
    ids = lambda text, limit=50: [r["id"] for r in history.search_sessions(text, limit)]  # noqa: E731
    assert ids("") == [4, 3, 2, 1]
    assert ids("alice") == [1] and ids("PROD") == [3, 1]  # user and connection, any case
    assert ids("orders") == [4, 2, 1]  # statement text, any case
    assert ids("orders", limit=2) == [4, 2]  # the newest statements' sessions first
    day = time.strftime("%Y-%m-%d", time.localtime(STARTED + 2 * 86400))
    assert ids(day) == [2]
    assert history.search_sessions("alice")[0]["user"] == "Alice"  # the column, not the database role
