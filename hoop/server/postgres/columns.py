"""Where result columns come from: (table OID, attribute number) -> schema.table.column.

RowDescription names a column by its table's OID and attribute number, whatever alias the
query gave it, so a column rule cannot be dodged by renaming. The names are looked up in
the upstream catalog over a side connection that the gateway opens with the held
credential, shared by every session of that connection, and cached. A relation's entries
are dropped after `TTL` seconds, so a table renamed or dropped and recreated is looked up
again; DDL through the gateway clears the cache of that connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

from hoop.core.masking import ColumnRef
from hoop.server.postgres.lineage_catalog import PgLineage
from hoop.server.postgres.sidelink import SideConnection, side_kwargs

log = logging.getLogger("hoop.postgres")
TTL = 60.0

# Type names for the OIDs PostgreSQL assigns to built-in types (stable across versions).
TYPE_NAMES = {
    16: "bool",
    17: "bytea",
    18: "char",
    19: "name",
    20: "int8",
    21: "int2",
    23: "int4",
    25: "text",
    26: "oid",
    114: "json",
    142: "xml",
    700: "float4",
    701: "float8",
    790: "money",
    829: "macaddr",
    869: "inet",
    650: "cidr",
    1042: "bpchar",
    1043: "varchar",
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    1186: "interval",
    1266: "timetz",
    1560: "bit",
    1562: "varbit",
    1700: "numeric",
    2950: "uuid",
    3802: "jsonb",
    1000: "_bool",
    1005: "_int2",
    1007: "_int4",
    1016: "_int8",
    1009: "_text",
    1015: "_varchar",
    1021: "_float4",
    1022: "_float8",
    1231: "_numeric",
    199: "_json",
    3807: "_jsonb",
    2951: "_uuid",
    1115: "_timestamp",
}
# Binary-format values of these types are their UTF-8 text, so detectors may read them.
TEXT_IN_BINARY = frozenset({18, 19, 25, 114, 142, 1042, 1043})
JSONB = 3802  # binary jsonb is a version byte (1) followed by the JSON text

_LOOKUP = """
SELECT a.attrelid::int8, a.attnum::int4, n.nspname, c.relname, a.attname, c.relkind IN ('v', 'm')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0
"""
_TABLE_COLUMNS = """
SELECT n.nspname, c.relname, a.attname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


class ColumnResolver:
    """One per upstream connection, shared by its sessions."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.columns: dict[tuple[int, int], ColumnRef] = {}
        self.loaded: dict[int, float] = {}  # table OID -> when its columns were fetched
        self.views: set[int] = set()  # OIDs of views and materialized views: their columns need lineage
        self.generation = 0  # changes whenever what `refs` answers may change (plans built on it)
        self.lock = asyncio.Lock()
        self.side = SideConnection(target)
        self.lineage = PgLineage(self.side, self.lock)

    def known(self, keys: list[tuple[int, int]]) -> bool:
        now = time.monotonic()
        return all(k[0] == 0 or now - self.loaded.get(k[0], -TTL) < TTL for k in keys)

    def refs(self, keys: list[tuple[int, int]]) -> list[ColumnRef | None]:
        return [self.columns.get(k) if k[0] else None for k in keys]

    def deadline(self, keys: list[tuple[int, int]]) -> float:
        """Until when (monotonic) `known(keys)` stays true without a new load."""
        return min((self.loaded.get(k[0], -TTL) + TTL for k in keys if k[0]), default=float("inf"))

    def invalidate(self) -> None:
        self.generation += 1
        self.loaded.clear()
        self.lineage.invalidate()

    def needs_lineage(self, keys: list[tuple[int, int]]) -> bool:
        """Whether some column is computed (no origin) or read through a view."""
        return any(k[0] == 0 or k[0] in self.views for k in keys)

    async def load(self, keys: list[tuple[int, int]]) -> None:
        async with self.lock:
            now = time.monotonic()
            oids = sorted({k[0] for k in keys if k[0] and now - self.loaded.get(k[0], -TTL) >= TTL})
            if not oids:
                return
            rows = await self.side.query(_LOOKUP, (oids,))
            self.generation += 1
            for oid in oids:
                self.loaded[oid] = now
            for relid, attnum, schema, table, column, is_view in rows:
                self.columns[(int(relid), int(attnum))] = ColumnRef(schema.lower(), table.lower(), column.lower())
                (self.views.add if is_view else self.views.discard)(int(relid))

    async def table_columns(self, table: str) -> list[ColumnRef]:
        async with self.lock:
            rows = await self.side.query(_TABLE_COLUMNS, (table,))
        return [ColumnRef(s.lower(), t.lower(), c.lower()) for s, t, c in rows]

    async def describe(self, query: str) -> list[tuple[int, int]]:
        """(table OID, attnum) of each output column of `query`, from Parse + Describe only:
        the query is analysed upstream, never executed."""
        return await asyncio.to_thread(self._describe, query)

    def _describe(self, query: str) -> list[tuple[int, int]]:
        with psycopg.connect(**side_kwargs(self.target)) as conn:
            pg = conn.pgconn
            res = pg.prepare(b"hoop_describe", query.encode())
            if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.ProgrammingError("the COPY query could not be analysed")
            res = pg.describe_prepared(b"hoop_describe")
            return [(int(res.ftable(i)), int(res.ftablecol(i))) for i in range(res.nfields)]

    async def close(self) -> None:
        await self.side.close()
