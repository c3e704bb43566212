"""Lineage of PostgreSQL result columns, with the upstream catalog (hoop/core/lineage.py).

A result column with no origin table (an expression) or whose origin is a view needs its
lineage when a column rule applies. The statement's relations, and those of the views it
reads (recursively), are looked up over the connection's side connection: schema, name,
columns and, for views and materialized views, `pg_get_viewdef`. Relations and lineages are
cached per statement text for `TTL` seconds, like column names; DDL through the gateway clears
them at once.

Names are resolved with the side connection's search path (the server's default), not the
session's: a session that changed `search_path` or reads its own temporary tables may name
other relations, and a name the catalog does not resolve makes the lineage unknown (the
rule's `on_unknown` then applies).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hoop.core.lineage import Catalog, LineageCache, LineageUnknown, Relation, Taint, lineage, relations_named
from hoop.server.postgres.sidelink import SideConnection

TTL = 60.0
MAX_VIEW_DEPTH = 8  # views naming views naming views...
MAX_CACHED = 1024

_RELATIONS = """
SELECT q.s, q.t, n.nspname, c.relname,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
FROM unnest(%s::text[], %s::text[]) AS q(s, t)
JOIN pg_class c ON c.oid = to_regclass(
    CASE WHEN q.s = '' THEN quote_ident(q.t) ELSE quote_ident(q.s) || '.' || quote_ident(q.t) END)
JOIN pg_namespace n ON n.oid = c.relnamespace
"""


class PgLineage:
    """One per upstream connection (with its ColumnResolver), shared by its sessions."""

    def __init__(self, side: SideConnection, lock: asyncio.Lock) -> None:
        self.side, self.lock = side, lock
        self.relations: dict[tuple[str, str], tuple[float, Relation | None]] = {}
        self.lineages = LineageCache(TTL, MAX_CACHED)

    def cached(self, text: str) -> list[tuple[Taint, ...]] | None:
        """A lineage computed within TTL (raises LineageUnknown for one found unknown)."""
        return self.lineages.get(text)

    def invalidate(self) -> None:
        self.relations.clear()
        self.lineages.clear()

    async def lineage(self, text: str) -> list[tuple[Taint, ...]]:
        return await self.lineages.follow(text, lambda: self._follow(text))

    async def _follow(self, text: str) -> list[tuple[Taint, ...]]:
        catalog = await self._catalog(text)
        return await asyncio.to_thread(lineage, text, "postgres", catalog)

    async def _catalog(self, text: str) -> Catalog:
        names = relations_named(text, "postgres")
        catalog: dict[tuple[str, str], Relation | None] = {}
        for _ in range(MAX_VIEW_DEPTH):
            await self._load(names)
            catalog.update({k: self.relations[k][1] for k in names})
            views = [r.view for r in catalog.values() if r is not None and r.view is not None]
            names = set().union(*(relations_named(v, "postgres") for v in views)) - set(catalog)
            if not names:
                return catalog
        raise LineageUnknown(f"views nested deeper than {MAX_VIEW_DEPTH} levels")

    async def _load(self, names: set[tuple[str, str]]) -> None:
        now = time.monotonic()
        missing = sorted(k for k in names if now - self.relations.get(k, (-TTL, None))[0] >= TTL)
        if not missing:
            return
        async with self.lock:
            rows: list[tuple[Any, ...]] = await self.side.query(
                _RELATIONS, ([s for s, _ in missing], [t for _, t in missing])
            )
        for key in missing:
            self.relations[key] = (now, None)  # not found: unknown, unless a row says otherwise
        for schema_as_written, name_as_written, schema, name, columns, view in rows:
            relation = Relation(schema.lower(), name.lower(), tuple(c.lower() for c in columns), view)
            self.relations[(schema_as_written, name_as_written)] = (now, relation)
