"""A gateway on its own SQLite store joins no cluster: no listener, no re-check timer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from hoop.core.store.sqlite import SqliteStore
from hoop.server import cluster


def test_a_sqlite_gateway_starts_no_listener(tmp_path: Path) -> None:
    services = SimpleNamespace(store=SqliteStore(tmp_path / "hoop.db"), peers=None)

    async def joined() -> object:
        return cluster.join(services)  # type: ignore[arg-type]

    assert asyncio.run(joined()) is None
    assert services.peers is None
