"""Where the columns of a view come from, so masking rules on base tables cover views.

MySQL column definitions name a view column's origin as the view itself, which no rule
written for the base table matches. For connections where masking applies, the door loads
`information_schema.VIEWS` over a short side connection (cached per connection for
`TTL` seconds) and maps each plain view column to its base column with sqlglot; computed
view columns map to None here; under a column rule their lineage is followed
(result_lineage.py). A view created after the last load is seen at the next load (at most TTL
later).
"""

from __future__ import annotations

import asyncio
import logging
import time

import sqlglot
from sqlglot import exp

from hoop.core.masking import ColumnRef
from hoop.server.mysql import codec as c
from hoop.server.mysql import packets as p
from hoop.server.mysql.upstream import MySQLTarget, UpstreamError, connect_upstream

log = logging.getLogger("hoop.mysql")
TTL = 30.0
_QUERY = "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS"
ViewKey = tuple[str, str]


def view_columns(definition: str) -> dict[str, ColumnRef | None]:
    """View column name -> base column (None when computed or not a single SELECT)."""
    try:
        tree = sqlglot.parse_one(definition, read="mysql")
    except sqlglot.errors.SqlglotError:
        return {}
    if not isinstance(tree, exp.Select):
        return {}
    tables = {t.alias_or_name.lower(): (t.db.lower(), t.name.lower()) for t in tree.find_all(exp.Table)}
    out: dict[str, ColumnRef | None] = {}
    for e in tree.expressions:
        inner = e.this if isinstance(e, exp.Alias) else e
        ref = None
        if isinstance(inner, exp.Column) and inner.table:
            db, table = tables.get(inner.table.lower(), (inner.db.lower(), inner.table.lower()))
            ref = ColumnRef(inner.db.lower() or db, table, inner.name.lower())
        out[e.alias_or_name.lower()] = ref
    return out


class Views:
    def __init__(self) -> None:
        self._maps: dict[str, tuple[float, dict[ViewKey, dict[str, ColumnRef | None]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, target: MySQLTarget) -> None:
        """Load (or refresh) the view map of this connection; failures leave it as it was."""
        hit = self._maps.get(target.name)
        if hit is not None and time.monotonic() - hit[0] < TTL:
            return
        async with self._locks.setdefault(target.name, asyncio.Lock()):
            hit = self._maps.get(target.name)
            if hit is not None and time.monotonic() - hit[0] < TTL:
                return
            try:
                rows = await _fetch(target)
            except (UpstreamError, OSError, TimeoutError, c.ProtocolViolation) as exc:
                log.warning("connection %s: cannot load view definitions: %s", target.name, exc)
                return
            views = {(s.lower(), t.lower()): view_columns(d) for s, t, d in rows}
            self._maps[target.name] = (time.monotonic(), views)

    def resolve(self, target: MySQLTarget, refs: list[ColumnRef | None]) -> list[ColumnRef | None]:
        hit = self._maps.get(target.name)
        if not hit or not hit[1]:
            return refs
        views = hit[1]
        out = []
        for ref in refs:
            for _ in range(8):  # views of views
                if ref is None or (ref.schema, ref.table) not in views:
                    break
                ref = views[(ref.schema, ref.table)].get(ref.column)
            out.append(ref)
        return out


async def _fetch(target: MySQLTarget) -> list[tuple[str, str, str]]:
    return await fetch_rows(target, _QUERY, 3)  # type: ignore[return-value]


async def fetch_rows(target: MySQLTarget, query: str, columns: int) -> list[tuple[str, ...]]:
    """The text rows of `query` (NULL read as "") over a short side connection; an error
    answer raises UpstreamError."""
    up = await connect_upstream(target)
    header = 1 + columns + (0 if up.capabilities & c.CLIENT_DEPRECATE_EOF else 1)  # count + definitions
    try:
        up.writer.write(c.encode_packet(p.build_com_query(query), 0))
        framer = c.PacketFramer()
        framer.feed(up.leftover)
        packets: list[bytes] = []
        async with asyncio.timeout(target.connect_timeout):
            while True:
                while (pkt := framer.next()) is not None:
                    packets.append(pkt[1])
                if packets and (p.is_err(packets[0]) or p.is_ok(packets[0])):
                    break
                if packets and packets[0][:1] == bytes((c.LOCAL_INFILE_HEADER,)):
                    raise c.ProtocolViolation("the server asked for a local file in answer to a catalog query")
                if len(packets) > header and p.is_result_end(packets[-1], up.capabilities):
                    break
                data = await up.reader.read(65536)
                if not data:
                    raise c.ProtocolViolation("server closed the connection")
                framer.feed(data)
        if packets and p.is_err(packets[0]):
            raise UpstreamError(
                1105, "HY000", f"the server refused a catalog query: {packets[0][9:].decode('utf-8', 'replace')}"
            )
        if not packets or p.is_ok(packets[0]):
            return []
        body = packets[header:-1]
        return [tuple((v or b"").decode("utf-8", "replace") for v in p.parse_text_row(r, columns)) for r in body]
    finally:
        await up.close()
