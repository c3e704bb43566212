"""A session that ends while the TUI reads the store is listed once: the Sessions table keys
rows by session id, and a session listed as live and as recent in one snapshot crashed it."""

from __future__ import annotations

from typing import Any

from tui_fixtures import NOW


def test_a_session_ending_between_the_two_reads_is_listed_once(history: Any) -> None:
    store = history.store
    real_query = store.query
    reads = 0

    def query_while_session_5_ends(sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        nonlocal reads
        rows = real_query(sql, params)
        reads += 1
        if reads == 1:  # after the live sessions were read, session 5 ends
            with store.lock:
                store.conn.execute("UPDATE sessions SET ended = ?, status = 'closed' WHERE id = 5", (NOW,))
        return rows

    store.query = query_while_session_5_ends
    snap = history.snapshot(NOW)
    ids = [r["id"] for r in snap.live + snap.recent]
    assert sorted(ids) == sorted(set(ids)), ids
    assert 5 in ids
