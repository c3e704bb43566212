"""Lineage of MySQL / MariaDB result columns, with the upstream catalog (hoop/core/lineage.py).

A result column names its origin (`org_table`, `org_name`). Under a column rule, a column
needs its lineage when it has no origin (an expression), or when its origin is not a base
table holding that column: a view, or a CTE or derived table, which MariaDB reports as the
origin table. The statement's relations, and those of the views it reads (recursively), are
looked up in `information_schema` (TABLES, COLUMNS by ORDINAL_POSITION, VIEWS) over a short
side connection with the held credential. Relations and lineages are cached per connection
for `TTL` seconds (lineages per statement text and current database); DDL through the
gateway clears them at once.

A name without its database resolves in the session's current database, as the server
resolves it: the connection's database at login, then whatever the server reports after
COM_INIT_DB or `USE` (session tracking). Another session's temporary table is not visible
to the side connection: its lineage is unknown (the rule's `on_unknown` then applies).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlglot import exp

from hoop.core.lineage import LineageCache, LineageUnknown, Outputs, Relation, lineage, parse, relations_named
from hoop.server.mysql.upstream import MySQLTarget
from hoop.server.mysql.views import fetch_rows

TTL = 60.0
MAX_VIEW_DEPTH = 8  # views naming views naming views...
MAX_CACHED = 1024
_PART = "(TABLE_SCHEMA = {s} AND TABLE_NAME = {t})"
_QUERY = """
SELECT 'T', TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, 0, '' FROM information_schema.TABLES WHERE {w}
UNION ALL
SELECT 'C', TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, '' FROM information_schema.COLUMNS WHERE {w}
UNION ALL
SELECT 'V', TABLE_SCHEMA, TABLE_NAME, '', 0, VIEW_DEFINITION FROM information_schema.VIEWS WHERE {w}
"""


class CatalogUnreadable(Exception):
    """The upstream catalog could not be read: the result is refused (fail closed)."""


def _literal(text: str) -> str:
    """A string literal that reads the same under every sql_mode (no quotes, no escapes)."""
    return f"CONVERT(X'{text.encode('utf-8').hex()}' USING utf8mb4)"


def metadata_only(text: str) -> bool:
    """SHOW / DESCRIBE: results about the schema, not rows of tables."""
    try:
        statements = parse(text, "mysql")
    except LineageUnknown:
        return False
    return bool(statements) and all(isinstance(s, (exp.Show, exp.Describe)) for s in statements)


@dataclass
class ConnectionLineage:
    """The caches of one connection (one upstream), shared by its sessions."""

    relations: dict[tuple[str, str], tuple[float, Relation | None]] = field(default_factory=dict)
    lineages: LineageCache = field(default_factory=lambda: LineageCache(TTL, MAX_CACHED))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def relation(self, schema: str, name: str) -> tuple[bool, Relation | None]:
        """(known within TTL, the relation or None when the catalog has no such relation)."""
        hit = self.relations.get((schema, name))
        if hit is None or time.monotonic() - hit[0] >= TTL:
            return False, None
        return True, hit[1]

    def cached(self, database: str, text: str) -> Outputs | None:
        """A lineage computed within TTL (raises LineageUnknown for one found unknown)."""
        return self.lineages.get((database, text))

    def invalidate(self) -> None:
        self.relations.clear()
        self.lineages.clear()

    async def load_tables(self, target: MySQLTarget, names: Iterable[tuple[str, str]]) -> None:
        """Look up relations (schema, name) not known within TTL."""
        now = time.monotonic()
        missing = sorted({k for k in names if not self.relation(*k)[0] and k[0]})
        if not missing:
            return
        where = " OR ".join(_PART.format(s=_literal(s), t=_literal(t)) for s, t in missing)
        async with self.lock:
            try:
                rows = await fetch_rows(target, _QUERY.format(w=where), 6)
            except Exception as exc:  # noqa: BLE001 - any failure to read the catalog refuses the result
                raise CatalogUnreadable(f"the upstream catalog could not be read: {str(exc)[:200]}") from None
        kinds: dict[tuple[str, str], str] = {}
        columns: dict[tuple[str, str], list[tuple[int, str]]] = {}
        views: dict[tuple[str, str], str] = {}
        for kind, schema, name, value, position, definition in rows:
            key = (schema.lower(), name.lower())
            if kind == "T":
                kinds[key] = value
            elif kind == "C":
                columns.setdefault(key, []).append((int(position or 0), value.lower()))
            else:
                views[key] = definition
        for key in missing:
            self.relations[key] = (now, None)  # not found: unknown, unless a row says otherwise
        for key, kind in kinds.items():
            view = views.get(key, "") if kind == "VIEW" else None  # a definition we may not see: ""
            cols = tuple(c for _, c in sorted(columns.get(key, [])))
            self.relations[key] = (now, Relation(key[0], key[1], cols, view))

    async def lineage(self, target: MySQLTarget, database: str, text: str) -> Outputs:
        """The lineage of `text` read in `database` (raises LineageUnknown, CatalogUnreadable)."""
        return await self.lineages.follow((database, text), lambda: self._follow(target, database, text))

    async def _follow(self, target: MySQLTarget, database: str, text: str) -> Outputs:
        catalog = await self._catalog(target, database, text)
        return await asyncio.to_thread(lineage, text, "mysql", catalog)

    async def _catalog(self, target: MySQLTarget, database: str, text: str) -> dict[tuple[str, str], Relation | None]:
        names = relations_named(text, "mysql")
        catalog: dict[tuple[str, str], Relation | None] = {}
        for _ in range(MAX_VIEW_DEPTH):
            await self.load_tables(target, {(s or database, t) for s, t in names})
            catalog.update({(s, t): self.relation(s or database, t)[1] for s, t in names})
            defs = [r.view for r in catalog.values() if r is not None and r.view]
            names = set().union(*(relations_named(v, "mysql") for v in defs)) - set(catalog)
            if not names:
                return catalog
        raise LineageUnknown(f"views nested deeper than {MAX_VIEW_DEPTH} levels")


class MySQLLineage:
    """The door's lineage caches, one per connection name."""

    def __init__(self) -> None:
        self._by_connection: dict[str, ConnectionLineage] = {}

    def of(self, connection: str) -> ConnectionLineage:
        known = self._by_connection.get(connection)
        if known is None:
            known = self._by_connection[connection] = ConnectionLineage()
        return known
