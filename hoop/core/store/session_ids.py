"""Session ids: one gateway on its own store numbers on from the highest stored; gateways
sharing a store take blocks from `id_blocks`, so no two hand out the same id."""

from __future__ import annotations

from pathlib import Path

from hoop.core.secrets import Secret
from hoop.core.store.base import Store, open_store

# Session ids on a shared store come in blocks, so gateways never hand out the same id and
# opening a session costs a store round trip once per block, not once per session.
ID_BLOCK = 1000


def first_session_ids(store: Store) -> tuple[int, int]:
    """(next id, end of the ids this journal may use): on a store of its own, every id after
    the highest stored; on a shared store, none yet (the first session reserves a block)."""
    row = store.one("SELECT max(id) AS m FROM sessions")
    first = int(row["m"] or 0) + 1 if row else 1
    return (first, 1 << 62) if not store.shared else (0, 0)


def reserve_session_ids(target: Path | Secret, count: int = ID_BLOCK) -> tuple[int, int]:
    store = open_store(target)
    try:
        with store.transaction() as tx:
            floor = tx.execute("SELECT coalesce(max(id), 0) + 1 AS f FROM sessions").fetchone()["f"]
            tx.execute(
                "INSERT INTO id_blocks(name, next) VALUES ('sessions', ?) ON CONFLICT(name) DO NOTHING", (floor,)
            )
            end = tx.execute(
                "UPDATE id_blocks SET next = next + ? WHERE name = 'sessions' RETURNING next", (count,)
            ).fetchone()["next"]
    finally:
        store.close()
    return int(end) - count, int(end)
